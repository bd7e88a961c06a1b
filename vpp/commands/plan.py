"""``vpp plan``: forecast and optimise the next horizon (48 h by default) and print the plan."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

import optimizer
from vpp.config import SiteConfig, read_config
from vpp.control.ev import stored_sessions
from vpp.control.fleet_planner import planner_for
from vpp.control.problem import build_problem, problem_horizon, slot_times
from vpp.control.reserve import battery_floors
from vpp.forecast.site import forecast_site
from vpp.forecast.weather import weather_provider

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plan", help="print the optimised plan for the next horizon",
                              description="Forecast PV, load and prices and print the battery plan.")
    p.add_argument("--config", required=True, help="site config YAML")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_planning_args(p)
    p.set_defaults(func=run)


def add_planning_args(p: argparse.ArgumentParser) -> None:
    """Options shared by commands that build a plan (``plan``, ``bids``)."""
    p.add_argument("--weather", default="open-meteo",
                   help="open-meteo (default), clear-sky, or a CSV file of weather")
    p.add_argument("--soc", action="append", default=[], metavar="[BAT=]FRACTION",
                   help="starting SoC (0..1) for all batteries or one; default: latest stored reading, else 0.5")
    p.add_argument("--start", help="plan as if now were this time (ISO 8601; default: now)")
    p.add_argument("--no-store", action="store_true", help="do not open the configured store")


def _start_soc(args, config: SiteConfig, store) -> tuple[dict[str, float], dict[str, str]]:
    soc: dict[str, float] = {}
    source: dict[str, str] = {}
    given = {}
    for item in args.soc:
        key, _, val = item.rpartition("=")
        given[key or "*"] = float(val)
    for b in config.devices_of("battery"):
        if b.id in given or "*" in given:
            soc[b.id], source[b.id] = given.get(b.id, given.get("*")), "command line"
            continue
        snap = None
        if store is not None:
            try:
                snap = store.latest(b.id).get(b.id)
            except Exception as e:  # noqa: BLE001 - planning works without the store
                log.warning("cannot read latest SoC of %s: %s", b.id, e)
        if snap is not None and "soc" in snap.values:
            soc[b.id], source[b.id] = snap.values["soc"], f"stored reading {snap.ts.isoformat()}"
        else:
            soc[b.id], source[b.id] = 0.5, "assumed (no reading)"
    return soc, source


def run(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    now = datetime.fromisoformat(args.start) if args.start else datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=ZoneInfo(config.site.timezone))
    now = now.astimezone(timezone.utc)
    store = None
    if not args.no_store:
        try:
            from vpp.storage import open_store
            store = open_store(config.storage, site=config.site.name)
        except Exception as e:  # noqa: BLE001 - a plan without history is still useful
            log.warning("store unavailable (%s): default load profile, assumed SoC", e)
    try:
        fc, _ = forecast_site(config, now, store=store, weather=weather_provider(args.weather, config))
        soc, soc_source = _start_soc(args, config, store)
        horizon = problem_horizon(config, fc, now)
        floors = battery_floors(config, slot_times(horizon), None)  # no storm mode outside the service
        problem = build_problem(config, fc, soc, floors, None, start=now,
                                evs=stored_sessions(config, store, now, horizon))
        try:
            sched = planner_for(config)(problem)  # the planner optimiser.planner selects (site LP or fleet)
        except optimizer.SolveError as e:
            print(f"error: optimiser failed: {e}", file=sys.stderr)
            return 1
    finally:
        if store is not None:
            store.close()
    if args.json:
        out = {"site": config.site.name, "generated_at": now.isoformat(),
               "weather": {"fallback": fc.weather_fallback, "reason": fc.weather_reason},
               "load_from_history": fc.load_from_history,
               "prices": {"version": fc.price_version,
                          "sources": sorted(set(fc.tariff["price_source"].astype(str)))},
               "soc0": soc, "soc0_source": soc_source, "schedule": sched.to_dict()}
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    _print(config, fc, sched, soc_source)
    return 0


def _print(config: SiteConfig, fc, sched: optimizer.Schedule, soc_source: dict[str, str]) -> None:
    tz = ZoneInfo(config.site.timezone)
    bats = list(sched.battery_w)
    t = Table(title=f"plan — {config.site.name} ({sched.n} × {sched.slot_s // 60} min)")
    for col in ["time", "period", "buy", "PV kW", "load kW", *[f"{b} kW" for b in bats],
                *[f"{b} SoC %" for b in bats], "floor %", "grid kW"]:
        t.add_column(col, justify="right", no_wrap=True)
    periods = fc.tariff["period"].reindex(sched.to_dataframe().index).fillna("")
    buy = fc.tariff["buy_per_kwh"].reindex(sched.to_dataframe().index)
    for k, ts in enumerate(sched.index()):
        floor = sched.floor[bats[0]][k] if bats else float("nan")
        t.add_row(ts.astimezone(tz).strftime("%d %H:%M"), str(periods.iloc[k]), f"{buy.iloc[k]:.1f}",
                  f"{sched.pv_w[k] / 1e3:.1f}", f"{sched.load_w[k] / 1e3:.1f}",
                  *[f"{sched.battery_w[b][k] / 1e3:+.1f}" for b in bats],
                  *[f"{sched.soc[b][k] * 100:.0f}" for b in bats],
                  f"{floor * 100:.0f}", f"{sched.grid_w[k] / 1e3:+.1f}")
    c = Console(width=110 + 32 * len(bats))
    c.print(t)
    s = sched.solver
    c.print(f"cost {sched.total_cost:,.1f} {config.tariff.currency}, import {sched.import_kwh:,.1f} kWh, "
            f"export {sched.export_kwh:,.1f} kWh, CO2 {sched.total_co2_kg:,.1f} kg")
    if s is not None:
        c.print(f"solver {s.solver}: {s.status}, {s.build_s + s.solve_s:.2f} s, validated {s.validated}")
    for b, src in soc_source.items():
        c.print(f"start SoC of {b}: {src}")
    c.print(f"prices: {fc.price_version} ({', '.join(sorted(set(fc.tariff['price_source'].astype(str))))})")
    if fc.weather_fallback:
        c.print(f"[yellow]weather: {fc.weather_reason}[/yellow]")
    if not fc.load_from_history:
        c.print("[yellow]load: default profile (no stored history)[/yellow]")
    for w in sched.warnings:
        c.print(f"[yellow]{w}[/yellow]")
