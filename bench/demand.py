"""Demand charge lowered by peak shaving: a HIL month on the community centre (the real
controller, drivers over loopback Modbus, embedded store, simulated devices) run twice from
the same start — with the 高圧 demand charge in the plan (peak shaving on the month's running
30-min maximum) and without it (the baseline, measured in the same run) — and billed the same
way afterwards (:func:`vpp.market.bill.site_bill` on each run's own store).

Usage: ``.venv/bin/python bench/demand.py [--days 30] [--json]``; logs go to stderr; ``--json``
prints one JSON line: ``{"days", "peak_kw_baseline", "peak_kw_shaving", "basic_charge_baseline",
"basic_charge_shaving", "basic_charge_ratio", "bill_total_baseline", "bill_total_shaving",
"reserve_violations_baseline", "reserve_violations_shaving", "wall_s"}``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/ocpp.py would shadow the ocpp library
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.scenarios.runner import run_scenario  # noqa: E402
from simulators.scenarios.spec import parse_scenario  # noqa: E402
from vpp.config import updated  # noqa: E402
from vpp.market.bill import site_bill  # noqa: E402
from vpp.storage import open_store  # noqa: E402

#: 高圧 basic charge of the bench [円/kW-month] at power factor 100 % (× 0.85)
DEMAND = {"unit_price_per_kw": 1800.0, "power_factor_pct": 100.0}
START = "2026-11-30T15:00:00Z"  # 00:00 JST, 1 December


def scenario(days: float):
    return parse_scenario({
        "name": "demand-month", "config": "community-centre", "start": START, "duration_h": 24 * days, "seed": 19,
        "initial_soc": 0.6,
        # December in Sendai: short, often cloudy days (a clear-sky index per day, repeated)
        "weather": {"daily": [0.8, 0.4, 0.6, 0.3, 0.9, 0.5, 0.7], "variability": 0.1},
        "config_patch": {"bill": {"demand": DEMAND}},
    }, "<bench demand-month>")


def run(days: float, shaving: bool, workdir: Path) -> dict:
    sc = scenario(days)
    cfg = sc.site_config()
    billed = cfg  # both runs are billed with the demand charge
    if not shaving:
        cfg = updated(cfg, bill={"demand": None})
    t0 = time.perf_counter()
    res = asyncio.run(run_scenario(sc, cfg, workdir=workdir))
    wall = time.perf_counter() - t0
    store = open_store(updated(billed, storage={"path": str(workdir / "vpp.sqlite")}).storage, site=cfg.site.name)
    try:
        b = site_bill(store, billed, "month", date(2026, 12, 1))
    finally:
        store.close()
    a = b["actual"]
    return {"peak_kw": a["peak_kw"], "basic_charge": a["basic_charge"], "total": a["total"],
            "energy": a["energy"], "import_kwh": a["import_kwh"], "export_kwh": a["export_kwh"],
            "reserve_violations": res.kpis.get("reserve_violations", float("nan")), "passed": res.passed,
            "failures": res.failures, "wall_s": wall, "speedup": res.speedup}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", choices=["baseline", "shaving"],
                    help="one of the two runs (to run them as two processes); prints that run's figures")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    out = {}
    with tempfile.TemporaryDirectory(prefix="vpp-bench-demand-") as tmp:
        for name, shaving in (("baseline", False), ("shaving", True)):
            if args.only and name != args.only:
                continue
            r = run(args.days, shaving, Path(tmp) / name)
            out[name] = r
            print(f"{name}: peak {r['peak_kw']:.1f} kW, basic charge {r['basic_charge']:,.0f} 円, bill "
                  f"{r['total']:,.0f} 円 (energy {r['energy']:,.0f} 円, import {r['import_kwh']:,.0f} kWh), "
                  f"reserve violations {r['reserve_violations']:.0f}, {r['speedup']:,.0f}× ({r['wall_s']:.0f} s)",
                  file=sys.stderr)
    if args.only:
        r = out[args.only]
        print(json.dumps({"days": args.days, "run": args.only, "peak_kw": round(r["peak_kw"], 2),
                          "basic_charge": round(r["basic_charge"]), "bill_total": round(r["total"]),
                          "reserve_violations": r["reserve_violations"], "wall_s": round(r["wall_s"], 1)}))
        return 0
    b, s = out["baseline"], out["shaving"]
    line = {"days": args.days, "peak_kw_baseline": round(b["peak_kw"], 2), "peak_kw_shaving": round(s["peak_kw"], 2),
            "basic_charge_baseline": round(b["basic_charge"]), "basic_charge_shaving": round(s["basic_charge"]),
            "basic_charge_ratio": round(s["basic_charge"] / b["basic_charge"], 3) if b["basic_charge"] else None,
            "bill_total_baseline": round(b["total"]), "bill_total_shaving": round(s["total"]),
            "reserve_violations_baseline": b["reserve_violations"], "reserve_violations_shaving": s["reserve_violations"],
            "wall_s": round(b["wall_s"] + s["wall_s"], 1)}
    if args.json:
        print(json.dumps(line))
    else:
        print(json.dumps(line, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
