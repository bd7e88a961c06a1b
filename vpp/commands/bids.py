"""``vpp bids``: the next day's aggregator offer per 30-min slot (ΔkW up/down and prices).

The problem is the one ``vpp plan`` builds (``Controller.forecast_job`` / ``build_problem``),
started on a 30-min boundary and given an offers section: prices from ``--prices`` CSV or
the config defaults, pessimistic PV/load from ``--errors`` (past forecast errors) at
``vpp.confidence``, expected activation ``vpp.activation_ratio``. Only the bid day's slots
are offered. The command refuses after the day-ahead deadline (14:00 site time the day
before) unless ``--force``; ``--storm`` or a JMA warning document (``--jma``) with a
reserve-raising warning removes every slot of the day, with the reason, and puts the plan
in storm mode (the floor rises toward the storm target by the start of the day).
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

import optimizer
from vpp.commands.plan import _FixedClock, _start_soc, add_planning_args, weather_provider
from vpp.config import SiteConfig, read_config
from vpp.control.loop import Controller, floor_time
from vpp.market.prices import SLOT_S, PriceError, default_prices, prices_for_day, read_price_csv, to_market_prices

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
    p.add_argument("--storm", action="store_true", help="storm mode: offer nothing for the day")
    p.add_argument("--jma", metavar="FILE", help="recorded JMA warning JSON for the site's area")
    add_planning_args(p)
    p.set_defaults(func=run)


def bid_deadline(day: date, tz: str) -> datetime:
    """Day-ahead gate closure for ``day``: 14:00 site time the day before (tz-aware)."""
    return datetime.combine(day - timedelta(days=1), time(14, 0), tzinfo=ZoneInfo(tz))


def storm_reason(args: argparse.Namespace, config: SiteConfig) -> str:
    """Why the day must not be offered ('' = it may)."""
    if args.storm:
        return "storm mode"
    if args.jma:
        from vpp.market.jma import read_warning_doc, should_raise_reserve

        # an explicitly given warning document counts even if the automatic trigger is off
        cfg = config.vpp.jma.model_copy(update={"enabled": True})
        hit, why = should_raise_reserve(read_warning_doc(args.jma), cfg)
        if hit:
            return f"JMA warning: {why}"
    return ""


def pessimistic(args: argparse.Namespace, problem: optimizer.Problem, confidence: float) -> dict:
    """Low/high PV and load [W] at ``confidence`` from ``--errors`` (empty without it)."""
    if not args.errors:
        return {}
    e = pd.read_csv(args.errors)
    q = 1.0 - confidence
    out = {}
    if "pv_error_w" in e:
        out["pv_low_w"], _, out["pv_high_w"] = optimizer.forecast_quantiles(e["pv_error_w"].to_numpy(float), problem.pv_w, q)
    if "load_error_w" in e:
        out["load_low_w"], _, out["load_high_w"] = optimizer.forecast_quantiles(
            e["load_error_w"].to_numpy(float), problem.load_w, q)
    return out


def run(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    tz = config.site.timezone
    try:
        day = date.fromisoformat(args.day)
    except ValueError:
        print(f"error: --day {args.day!r} is not YYYY-MM-DD", file=sys.stderr)
        return 2
    now = datetime.fromisoformat(args.start) if args.start else datetime.now(timezone.utc)
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
        frame = read_price_csv(args.prices, tz) if args.prices else default_prices(config.vpp, day, tz)
        frame = prices_for_day(frame, day, tz)
    except PriceError as e:
        print(f"error: prices: {e}", file=sys.stderr)
        return 2
    reason = storm_reason(args, config)
    day_start = datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)
    t0 = floor_time(now, SLOT_S)  # offer slots are wall-clock half hours
    store = None
    if not args.no_store:
        try:
            from vpp.storage import open_store
            store = open_store(config.storage, site=config.site.name)
        except Exception as e:  # noqa: BLE001 - bids without history are still possible
            log.warning("store unavailable (%s): default load profile, assumed SoC", e)
    try:
        ctl = Controller(config, clock=_FixedClock(t0), store=store, weather=weather_provider(args.weather, config))
        if reason:
            ctl.storm.on(now, ctl.storm.target, day_start, reason)
        fc = ctl.forecast_job()
        soc, _ = _start_soc(args, config, store)
        problem = ctl.build_problem(t0, fc, soc)
    finally:
        if store is not None:
            store.close()
    h = problem.horizon
    k = SLOT_S // h.slot_s
    n_off = h.n // k
    starts = [h.start + timedelta(seconds=SLOT_S * j) for j in range(n_off)]
    in_day = [day_start <= s < day_start + timedelta(days=1) for s in starts]
    if sum(in_day) < len(frame):
        print(f"error: the plan horizon ({config.optimiser.horizon_h:g} h from {h.start.isoformat()}) "
              f"does not cover {day}", file=sys.stderr)
        return 2
    blocked = {j: ("outside the bid day" if not ok else reason) for j, ok in enumerate(in_day) if not ok or reason}
    v = config.vpp
    problem.offers = optimizer.OfferParams(
        prices=to_market_prices(frame, h.start, n_off), slot_s=SLOT_S,
        duration_s=args.duration_s or v.duration_s, activation_ratio=v.activation_ratio,
        blocked=blocked, **pessimistic(args, problem, v.confidence))
    try:
        sched = optimizer.solve(problem)
    except (optimizer.SolveError, PriceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    offers = [o for o, ok in zip(sched.offers, in_day) if ok]
    spot = {o.slot_start: s for o, s in zip(sched.offers, to_market_prices(frame, h.start, n_off).spot)}
    rows = [{"slot_start": o.slot_start.astimezone(ZoneInfo(tz)).isoformat(), "up_kw": round(o.up_w / 1e3, 3),
             "down_kw": round(o.down_w / 1e3, 3), "capacity_price_up": o.capacity_price_up,
             "capacity_price_down": o.capacity_price_down, "energy_price_up": o.energy_price_up,
             "energy_price_down": o.energy_price_down,
             "spot": None if not np.isfinite(spot[o.slot_start]) else float(spot[o.slot_start]),
             "expected_revenue": round(o.expected_revenue, 2), "reason": o.reason} for o in offers]
    total = sum(o.expected_revenue for o in offers)
    at_risk = sum(o.expected_revenue - (o.capacity_price_up * o.up_w + o.capacity_price_down * o.down_w) / 1e3
                  for o in offers)
    if args.json:
        json.dump({"site": config.site.name, "day": day.isoformat(), "generated_at": now.isoformat(),
                   "deadline": deadline.isoformat(), "late": now > deadline, "storm": reason or None,
                   "duration_s": problem.offers.duration_s, "activation_ratio": v.activation_ratio,
                   "confidence": v.confidence, "expected_revenue": total, "revenue_at_risk": at_risk,
                   "warnings": sched.warnings, "offers": rows}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif args.csv:
        w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["slot_start"])
        w.writeheader()
        w.writerows(rows)
    else:
        _print(config, day, rows, total, at_risk, reason, sched.warnings)
    return 0


def _print(config: SiteConfig, day: date, rows: list[dict], total: float, at_risk: float, reason: str,
           warnings: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    cur = config.tariff.currency
    t = Table(title=f"offers — {config.site.name} {day} (30 min)")
    for col in ("time", "up kW", "down kW", f"cap up {cur}/kW", f"cap down {cur}/kW", f"revenue {cur}", "reason"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        t.add_row(r["slot_start"][11:16], f"{r['up_kw']:.1f}", f"{r['down_kw']:.1f}",
                  f"{r['capacity_price_up']:.2f}", f"{r['capacity_price_down']:.2f}",
                  f"{r['expected_revenue']:.1f}", r["reason"])
    c = Console(width=130)
    c.print(t)
    c.print(f"expected revenue {total:,.1f} {cur}, of which at risk (paid only if dispatched) {at_risk:,.1f} {cur}")
    if reason:
        c.print(f"[yellow]no offers: {reason}[/yellow]")
    for w in warnings:
        c.print(f"[yellow]{w}[/yellow]")
