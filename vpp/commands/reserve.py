"""``vpp reserve check``: do the configured batteries carry the critical load for ``autonomy_h``
from the reserve floor, without PV and with pessimistic PV (:func:`vpp.control.autonomy.check_reserve`)?"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from vpp.commands.jsonout import stdout_to_stderr
from vpp.config import read_config
from vpp.control.autonomy import check_reserve
from vpp.control.reserve import capped_floor_warnings


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("reserve", help="disaster reserve tools",
                              description="Disaster reserve tools.")
    sub = p.add_subparsers(dest="reserve_cmd", required=True)
    c = sub.add_parser("check", help="do the batteries carry the critical load for autonomy_h at the floor?",
                       description="Check the reserve sizing in usable energy (soc_min, discharge efficiency, "
                                   "inverter standby), without PV and with pessimistic (p10) PV.")
    c.add_argument("--config", required=True, help="site config YAML")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.add_argument("--pv-start", help="start of the pessimistic-PV window (ISO date/time, site zone; "
                                      "default: the next 21 December)")
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when the batteries meet ``autonomy_h`` without PV, 2 when they do not."""
    config = read_config(args.config)
    start = None
    if args.pv_start:
        start = datetime.fromisoformat(args.pv_start)
        if start.tzinfo is None:
            start = start.replace(tzinfo=ZoneInfo(config.site.timezone))
    with stdout_to_stderr(args.json):
        res = check_reserve(config, start)
        warnings = capped_floor_warnings(config)
    if args.json:
        json.dump({"site": config.site.name, **res.to_dict(), "warnings": warnings}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0 if res.meets_no_pv else 2
    ok = lambda b: "yes" if b else "NO"  # noqa: E731
    print(f"reserve check — {config.site.name}")
    print(f"  carry {res.critical_load_w:.0f} W critical + {res.standby_w:.0f} W inverter standby "
          f"= {res.load_w:.0f} W for {res.autonomy_h:g} h")
    for b, f in res.floors.items():
        print(f"  {b}: floor {f:.1f} % (autonomy rule asks {res.required_floors[b]:.1f} %)")
    print(f"  usable energy at the floor: {res.usable_at_floor_wh / 1000:.1f} kWh")
    limit = max(2 * res.autonomy_h, 1.0)  # check_reserve looks this far
    hrs = lambda h: f"≥ {limit:g} h" if h >= limit else f"{h:.1f} h"  # noqa: E731
    print(f"  without PV: {hrs(res.hours_no_pv)} — meets {res.autonomy_h:g} h: {ok(res.meets_no_pv)}")
    print(f"  with p10 PV: {hrs(res.hours_p10_pv)} — meets {res.autonomy_h:g} h: {ok(res.meets_p10_pv)}")
    print(f"    (PV used: {res.pv_basis})")
    if res.floor_pct_needed is not None:
        print(f"  a floor of {res.floor_pct_needed:.1f} % would carry it")
    if res.capacity_kwh_needed is not None:
        print(f"  or a battery capacity of {res.capacity_kwh_needed:.1f} kWh in total")
    for w in warnings:
        print(f"  warning: {w}")
    return 0 if res.meets_no_pv else 2
