"""The central service across towns: the bus side (:mod:`vpp.central.service`), its durable
state (:mod:`vpp.central.state`) and the pluggable per-town planning (:mod:`vpp.central.planning`)."""
