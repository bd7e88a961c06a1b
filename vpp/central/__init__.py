"""The central service across towns: the bus side (:mod:`vpp.central.service`), its durable
state (:mod:`vpp.central.state`), the pluggable per-town planning (:mod:`vpp.central.planning`) and
fleet planning fanned out per town on a Dask cluster (:mod:`vpp.central.fanout`)."""
