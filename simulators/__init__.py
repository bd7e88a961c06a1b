"""Simulated devices for demos, tests and hardware-in-the-loop rehearsal.

* :mod:`simulators.clock` — :class:`~simulators.clock.SimClock`, shared simulated time
  (``speed`` × wall time, or manual with ``speed=0``).
* :mod:`simulators.physics` — pure vectorised physics: pvlib clear-sky PV, battery SoC,
  EV sessions (IEC 61851 states), site power balance, load profiles.
* :mod:`simulators.devices` — one model class per device kind (state + ``step``/``values``/
  ``apply_write``).
* :mod:`simulators.site` — :class:`~simulators.site.SimulatedSite`: the models of a site
  config served over Modbus TCP (:mod:`drivers.server`) with the same register maps the
  drivers use, plus fault injection and grid-outage islanding.

Run one with ``vpp sim --config FILE [--speed N]``.
"""
