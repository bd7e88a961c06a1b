"""Control: the site's control loop and its parts.

* :mod:`~vpp.control.loop` — the :class:`Controller` (state) and its jobs (forecast, plan,
  dispatch) as short recipes;
* :mod:`~vpp.control.image` — the per-step process image (every device read once);
* :mod:`~vpp.control.decide`, :mod:`~vpp.control.ev`, :mod:`~vpp.control.gridlimit` — one
  dispatch step's battery decisions, EV current limits and grid-limit measures over it;
* :mod:`~vpp.control.problem` — the pure optimiser problem builder and the plan;
* :mod:`~vpp.control.reserve` — the floor, storm mode and the reserve state machine;
  :mod:`~vpp.control.bounds` — layer composition; :mod:`~vpp.control.fallback` — the rule
  used without a plan; :mod:`~vpp.control.freshness` — when a reading or plan is usable;
  :mod:`~vpp.control.alarms`; :mod:`~vpp.control.scheduler` — job wiring.

Signs as in :mod:`drivers`: battery power > 0 discharges, grid power > 0 imports.
"""
