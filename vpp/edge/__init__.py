"""Edge agent of one town: its devices and real-time controller stay local (the same
:class:`~vpp.runtime.Runtime` as ``vpp run``); it talks to the centre over the bus
(:mod:`vpp.edge.agent`), applying leased commands checked by :mod:`vpp.edge.commands`."""
