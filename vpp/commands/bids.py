"""``vpp bids``: the next day's aggregator offer per 30-min slot (ΔkW up/down and prices).

A thin shell over :func:`vpp.market.bids.plan_bids` (the same service ``GET /api/v1/bids``
calls): prices from ``--prices`` CSV or the config defaults, pessimistic PV/load from
``--errors`` (past forecast errors) at ``vpp.confidence``, starting SoC from ``--soc`` or the
store. The command refuses after the day-ahead deadline (14:00 site time the day before)
unless ``--force``. ``--storm`` (storm expected at ``--storm-deadline``, default the start of
the day) and a JMA warning document (``--jma``) remove only the slots they affect — from
``reserve.storm_lead_h`` before the storm / warning window to its end — with the reason; the
other slots stay offered. Exit codes: 0 ok, 2 bad input, 3 past the deadline, 1 no plan.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vpp.commands.bids_product import ProductError, add_product_args, product_section
from vpp.commands.plan import _start_soc, add_planning_args
from vpp.forecast.weather import weather_provider
from vpp.config import SiteConfig, read_config
from vpp.control.reserve import StormMode
from vpp.market.bids import BidError, bid_deadline, plan_bids
from vpp.market.products import catalogue
from vpp.market.jma import read_warning_doc
from vpp.market.prices import PriceError, read_price_csv

__all__ = ["register", "run", "bid_deadline", "storm_mode"]

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bids", help="next day's VPP offer per 30-min slot",
                              description="Co-optimise the energy plan and the ΔkW offered to the aggregator "
                                          "and print the offer for each 30-min slot of --day.")
    p.add_argument("--config", required=True, help="site config YAML")
    p.add_argument("--day", required=True, help="bid day YYYY-MM-DD (site time zone)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    p.add_argument("--prices", help="price CSV (vpp.market.prices format); default: config vpp prices")
    p.add_argument("--errors", help="CSV of past forecast errors [W] with columns pv_error_w, load_error_w")
    p.add_argument("--duration-s", type=float, default=None,
                   help="activation duration the offer must sustain [s] (default: vpp.duration_s)")
    p.add_argument("--force", action="store_true", help="bid even after the day-ahead deadline")
    p.add_argument("--storm", action="store_true",
                   help="storm mode: no offers from --storm-deadline minus reserve.storm_lead_h on")
    p.add_argument("--storm-deadline", metavar="ISO",
                   help="when the storm is expected (floor at its target by then); default: start of --day")
    p.add_argument("--jma", metavar="FILE", help="recorded JMA warning JSON for the site's area")
    add_product_args(p)
    add_planning_args(p)
    p.set_defaults(func=run)


def storm_mode(args: argparse.Namespace, config: SiteConfig, day: date, now: datetime) -> StormMode | None:
    """``--storm`` as a :class:`StormMode`: floor at the storm target by ``--storm-deadline``
    (default: the start of the bid day, which removes the whole day)."""
    if not args.storm:
        return None
    tz = ZoneInfo(config.site.timezone)
    if args.storm_deadline:
        deadline = datetime.fromisoformat(args.storm_deadline)
        deadline = deadline.replace(tzinfo=tz) if deadline.tzinfo is None else deadline
    else:
        deadline = datetime.combine(day, time(0), tzinfo=tz)
    s = StormMode(lead=timedelta(hours=config.reserve.storm_lead_h))
    s.on(now, config.reserve.storm_target_pct / 100.0, deadline.astimezone(timezone.utc), "command line")
    return s


def run(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    tz = config.site.timezone
    try:
        day = date.fromisoformat(args.day)
        now = datetime.fromisoformat(args.start) if args.start else datetime.now(timezone.utc)
        storm = storm_mode(args, config, day, now if now.tzinfo else now.replace(tzinfo=ZoneInfo(tz)))
    except ValueError as e:
        print(f"error: bad date or time: {e}", file=sys.stderr)
        return 2
    if now.tzinfo is None:
        now = now.replace(tzinfo=ZoneInfo(tz))
    now = now.astimezone(timezone.utc)
    deadline = bid_deadline(day, tz)
    if now > deadline and not args.force:
        print(f"error: the day-ahead deadline for {day} was {deadline.isoformat()} "
              f"(now {now.astimezone(ZoneInfo(tz)).isoformat(timespec='minutes')}); use --force to bid anyway",
              file=sys.stderr)
        return 3
    try:
        prices = read_price_csv(args.prices, tz) if args.prices else None
        errors = pd.read_csv(args.errors) if args.errors else None
        jma_doc = read_warning_doc(args.jma) if args.jma else None
    except (PriceError, OSError, ValueError) as e:
        print(f"error: inputs: {e}", file=sys.stderr)
        return 2
    store = None
    if not args.no_store:
        try:
            from vpp.storage import open_store
            store = open_store(config.storage, site=config.site.name)
        except Exception as e:  # noqa: BLE001 - bids without history are still possible
            log.warning("store unavailable (%s): default load profile, assumed SoC", e)
    duration_s = args.duration_s
    if args.product:
        try:  # a product's offers must last at least its minimum duration
            duration_s = max(duration_s or config.vpp.duration_s, catalogue().get(args.product).min_duration_s)
        except ProductError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    try:
        soc, _ = _start_soc(args, config, store)
        res = plan_bids(config, day, prices, now=now, soc=soc, weather=weather_provider(args.weather, config),
                        store=store, storm=storm, jma_doc=jma_doc, errors=errors, duration_s=duration_s)
    except BidError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if e.status < 500 else 1
    finally:
        if store is not None:
            store.close()
    rows = [{"slot_start": s.start.astimezone(ZoneInfo(tz)).isoformat(), "up_kw": round(s.up_w / 1e3, 3),
             "down_kw": round(s.down_w / 1e3, 3), "capacity_price_up": _num(s.capacity_price_up),
             "capacity_price_down": _num(s.capacity_price_down), "energy_price_up": _num(s.energy_price_up),
             "energy_price_down": _num(s.energy_price_down), "spot": _num(s.spot),
             "expected_revenue": round(s.expected_revenue, 2), "reason": s.reason} for s in res.slots]
    product = None
    if args.product:
        try:
            product = product_section(args, res.site, day.isoformat(), rows, now)
        except ProductError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if args.json:
        json.dump({"site": res.site, "day": day.isoformat(), "generated_at": now.isoformat(),
                   "deadline": res.deadline.isoformat(), "late": res.late, "storm": res.storm,
                   "duration_s": res.duration_s, "activation_ratio": res.activation_ratio,
                   "confidence": res.confidence, "expected_revenue": res.expected_revenue,
                   "revenue_at_risk": res.revenue_at_risk, "warnings": res.warnings, "offers": rows,
                   "removed": [{"slot_start": r["slot_start"], "reason": r["reason"]}
                               for r, s in zip(rows, res.slots) if s.removed],
                   **({"product": product} if product else {})}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif args.csv:
        w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["slot_start"])
        w.writeheader()
        w.writerows(rows)
    else:
        _print(config, day, rows, res.expected_revenue, res.revenue_at_risk, res.storm or "", res.warnings)
        if product:
            kept = [s for s in product["slots"] if s["offered_kw"] > 0]
            print(f"{product['name']} ({product['dispatch']}, lot {product['min_lot_kw']:g} kW): "
                  f"{len(kept)} of {len(product['slots'])} slots reach the lot with {len(product['resources'])} "
                  f"resource(s); {product['offered_kwh']:g} kWh offered")
            for s in product["slots"]:
                if s["reason"]:
                    print(f"  {s['slot_start'][11:16]} dropped: {s['reason']}")
    return 0


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _print(config: SiteConfig, day: date, rows: list[dict], total: float, at_risk: float, reason: str,
           warnings: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    cur = config.tariff.currency
    t = Table(title=f"offers — {config.site.name} {day} (30 min)")
    t.add_column("time", justify="right", no_wrap=True, min_width=5)
    for col in ("up kW", "down kW", f"cap up {cur}/kW", f"cap down {cur}/kW", f"revenue {cur}"):
        t.add_column(col, justify="right", no_wrap=True)
    t.add_column("reason", no_wrap=True, max_width=50, overflow="ellipsis")
    for r in rows:
        t.add_row(r["slot_start"][11:16], f"{r['up_kw']:.1f}", f"{r['down_kw']:.1f}",
                  _fmt(r["capacity_price_up"]), _fmt(r["capacity_price_down"]),
                  f"{r['expected_revenue']:.1f}", r["reason"])
    c = Console(width=130)
    c.print(t)
    c.print(f"expected revenue {total:,.1f} {cur}, of which at risk (paid only if dispatched) {at_risk:,.1f} {cur}")
    if reason:
        c.print(f"[yellow]slots removed: {reason}[/yellow]")
    for w in warnings:
        c.print(f"[yellow]{w}[/yellow]")


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"
