"""Hardware-in-the-loop scenarios: the real controller against simulated devices.

* :mod:`.spec` — scenario YAML files (``data/*.yaml``): start, duration, weather, loads, EV
  arrivals, grid outages, storm mode, aggregator dispatches, device faults, storage and
  solver outages, and assertions on KPIs.
* :mod:`.weather` — the cloud trace the simulated PV sees and the (biased) forecast of it.
* :mod:`.runner` — :func:`~.runner.run_scenario`: site, fleet, store and controller wired
  at simulated time, events applied from the timeline, every step recorded.
* :mod:`.kpis` — KPIs from the record and the assertion check.
* :mod:`.report` — ``kpis.json`` and an offline ``report.html``.

Run with ``vpp scenario run NAME [--speed N|max] [--report DIR]``.
"""
