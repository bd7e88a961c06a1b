"""Hardware-in-the-loop speed: simulated seconds per wall second of a scenario run (the real
controller, driver fleet, embedded store and simulated devices over loopback Modbus).

* single site: the ``sunny-day`` scenario (community centre, 1 simulated day), goal ≥ 1,000×;
* outage: the full ``winter-outage-72h`` scenario (72 h islanded in January): critical load
  served, hours, EV energy from the battery, min SoC, shed order;
* town: the ``town-day`` scenario with ``--homes`` homes for ``--town-hours`` simulated hours,
  goal ≥ 10× with the loop's 1-min dispatch and 15-min plan cadence kept (every step is run;
  the slowest steps are reported: at 10× a 60 s step must take ≤ 6 s wall).

Usage: ``.venv/bin/python bench/hil.py [--homes 721] [--town-hours 1] [--json]``; ``--json``
ends with one JSON line ``{"single_site_speedup": …, "town_speedup": …, "town_homes": …,
"winter_outage_72h": {KPIs of the full 76 h winter-outage-72h run}}`` (``--no-winter`` skips it).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/ocpp.py would shadow the ocpp library
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.scenarios.runner import run_scenario  # noqa: E402
from simulators.scenarios.spec import read_scenario  # noqa: E402


#: KPIs of the ``winter-outage-72h`` run in the ``--json`` line (under ``winter_outage_72h``).
WINTER_KPIS = ("critical_demand_kwh", "critical_served_kwh", "critical_served_ratio", "critical_hours_served",
               "ev_from_battery_kwh", "shed_events", "soc_min", "soc_at_outage", "outage_minutes", "pv_kwh")


def timed_run(sc, hours: float) -> tuple[object, list[float]]:
    """Run ``sc`` at full speed; returns the result and the wall time of every step [s]."""
    marks = [time.perf_counter()]

    def on_progress(done: float, total: float) -> None:
        marks.append(time.perf_counter())

    result = asyncio.run(run_scenario(sc, hours=hours, on_progress=on_progress))
    return result, [b - a for a, b in zip(marks[1:], marks[2:])]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--homes", type=int, default=721)
    ap.add_argument("--town-hours", type=float, default=1.0)
    ap.add_argument("--site-hours", type=float, default=24.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-winter", action="store_true", help="skip the 76 h winter-outage-72h run (~1 min)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)

    site, site_steps = timed_run(read_scenario("sunny-day"), args.site_hours)
    print(f"single site ({site.config.site.name}, {len(site.config.devices)} devices): "
          f"{site.sim_s / 3600:.0f} simulated h in {site.wall_s:.1f} s wall = {site.speedup:,.0f}× "
          f"(goal ≥ 1,000×); slowest step {max(site_steps):.2f} s")

    sc = read_scenario("town-day")
    sc.town.homes = args.homes
    town, steps = timed_run(sc, args.town_hours)
    n_dev = len(town.config.devices)
    o = town.config.optimiser
    per_plan = max(int(round(o.plan_interval_s / o.dispatch_interval_s)), 1)
    # steps[i] is control step i + 1; steps k % per_plan == 0 also forecast and plan, which
    # in real time run in the scheduler's thread pool beside the dispatch job
    plan_steps = [s for i, s in enumerate(steps) if (i + 1) % per_plan == 0]
    dispatch_steps = sorted(s for i, s in enumerate(steps) if (i + 1) % per_plan != 0)
    p95 = dispatch_steps[int(0.95 * (len(dispatch_steps) - 1))] if dispatch_steps else 0.0
    d_max, p_max = max(dispatch_steps, default=0.0), max(plan_steps, default=0.0)
    kept = d_max <= o.dispatch_interval_s / 10 and p_max <= o.plan_interval_s / 10
    print(f"town ({args.homes} homes, {n_dev} devices, {len(town.batteries)} batteries): "
          f"{town.sim_s / 3600:g} simulated h in {town.wall_s:.1f} s wall = {town.speedup:,.1f}× "
          f"(goal ≥ 10×); dispatch step wall p95 {p95:.2f} s, max {d_max:.2f} s "
          f"(≤ {o.dispatch_interval_s / 10:.0f} s at 10×); plan step max {p_max:.2f} s "
          f"(≤ {o.plan_interval_s / 10:.0f} s at 10×); cadence kept at 10×: {'yes' if kept else 'no'}; "
          f"plans {town.kpis['plans_made']:.0f}, plan minutes {town.kpis['plan_minutes']:.0f}, "
          f"fallback minutes {town.kpis['fallback_minutes']:.0f}")
    winter = None
    if not args.no_winter:
        w, _ = timed_run(read_scenario("winter-outage-72h"), None)
        wk = w.kpis
        winter = {"passed": w.passed, "failures": w.failures, "shed_order": w.shed_order,
                  **{k: round(float(wk[k]), 4) for k in WINTER_KPIS if k in wk},
                  "speedup": round(w.speedup, 1)}
        print(f"winter-outage-72h: critical load served {wk['critical_served_kwh']:.1f} of "
              f"{wk['critical_demand_kwh']:.1f} kWh ({100 * wk['critical_served_ratio']:.1f} %) for "
              f"{wk['critical_hours_served']:.1f} h, EV from battery {wk['ev_from_battery_kwh']:.2f} kWh, "
              f"min SoC {wk['soc_min']:.3f}, shed order {' → '.join(w.shed_order)}; "
              f"{'PASSED' if w.passed else 'FAILED: ' + '; '.join(w.failures)}")
    if args.json:
        print(json.dumps({"single_site_speedup": round(site.speedup, 1), "town_speedup": round(town.speedup, 2),
                          "town_homes": args.homes, "town_hours": args.town_hours,
                          "town_dispatch_step_p95_s": round(p95, 3), "town_dispatch_step_max_s": round(d_max, 3),
                          "town_plan_step_max_s": round(p_max, 3),
                          "town_cadence_kept_at_10x": kept, "winter_outage_72h": winter}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
