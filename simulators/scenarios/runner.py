"""Run a scenario: the real controller, unchanged, against the simulated site over Modbus TCP
on loopback, at simulated time.

Recipe (:func:`run_scenario`)::

    scenario + site config ──► SimulatedSite (free loopback ports, cloud trace, seeded loads)
    DriverFleet ─► SimulatedTelemetry ─► TelemetryPipeline ─► embedded store (+ spool)
    Controller(fleet, clock, store, weather=trace forecast, dispatch_source=awards)
    run_simulated: refresh → forecast/plan when due → dispatch → record → timeline → step
    record ─► KPIs ─► assertions (─► report)

``speed=None`` runs as fast as possible; a number paces the simulated clock to at most that
many simulated seconds per wall second.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import optimizer
from drivers.fleet import DriverFleet
from drivers.poller import PollPolicy
from simulators.clock import SimClock
from simulators.scenarios.ocpp_site import OcppScenario
from simulators.devices import BatteryModel, EvChargerModel, EvSession, PvModel
from simulators.scenarios.balancing_kpis import GatePlans
from simulators.scenarios.kpis import check, compute_kpis, outage_kpis
from simulators.scenarios.spec import Scenario
from simulators.scenarios.weather import CloudTrace, TraceWeatherProvider
from simulators.site import SimulatedSite, with_free_ports
from vpp.config import EmbeddedStorage, SiteConfig
from vpp.control.bounds import Proposal
from vpp.control.fleet_planner import planner_for
from vpp.control.bounds import Override
from vpp.control.loop import Controller
from simulators.echonet_site import on_free_block
from vpp.control.scheduler import SimulatedTelemetry, run_simulated
from vpp.forecast.tariff import expand_tariff
from vpp.market.dispatch import Dispatch, DispatchRequest
from vpp.storage import TelemetryPipeline, open_store

log = logging.getLogger(__name__)


@dataclass
class ScenarioResult:
    """Outcome of one run: KPIs, failed assertions, the per-step record and timings."""

    scenario: Scenario
    config: SiteConfig
    kpis: dict[str, float]
    failures: list[str]
    record: pd.DataFrame
    vpp_slots: list[dict]
    batteries: list[str]
    events: list[dict]
    wall_s: float
    sim_s: float
    shed_order: list[str] = dataclasses.field(default_factory=list)  #: load groups in the order shed

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def speedup(self) -> float:
        return self.sim_s / self.wall_s if self.wall_s > 0 else math.inf


class _Timeline:
    """Scenario events as (time, label, action) applied in time order as the clock passes."""

    def __init__(self) -> None:
        self.items: list[tuple[datetime, str, Callable[[], Any]]] = []
        self.log: list[dict] = []

    def add(self, at: datetime, label: str, action: Callable[[], Any]) -> None:
        self.items.append((at, label, action))
        self.items.sort(key=lambda x: x[0])

    async def apply_due(self, now: datetime) -> None:
        while self.items and self.items[0][0] <= now:
            at, label, action = self.items.pop(0)
            r = action()
            if asyncio.iscoroutine(r) or isinstance(r, asyncio.Future):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(r, 5.0)
            self.log.append({"t": now.isoformat(), "event": label})
            log.info("scenario %s: %s", now.isoformat(timespec="minutes"), label)


class _FlakySolver:
    """The real optimiser, failing inside the scenario's solver-outage windows."""

    def __init__(self, clock, windows: list[tuple[datetime, datetime]],
                 solve: Callable[[optimizer.Problem], optimizer.Schedule]) -> None:
        self.clock, self.windows, self._solve = clock, windows, solve
        self.solved = 0

    def __call__(self, problem: optimizer.Problem) -> optimizer.Schedule:
        now = self.clock.now()
        if any(a <= now < b for a, b in self.windows):
            raise optimizer.SolveError("scenario: solver outage")
        sched = self._solve(problem)
        self.solved += 1
        return sched


def prepare_config(config: SiteConfig, workdir: Path) -> SiteConfig:
    """Scenario copy of ``config``: free loopback ports, short Modbus timeouts without
    retries (a dead device must not stall simulated time), the embedded store in ``workdir``."""
    cfg = with_free_ports(config)
    devices = [d.model_copy(update={"timeout_s": min(d.timeout_s, 0.5), "retries": 0})
               for d in cfg.devices]
    storage = EmbeddedStorage(path=str(workdir / "vpp.sqlite"), flush_interval_s=0.05)
    return cfg.model_copy(update={"devices": devices, "storage": storage})


def _dispatch_source(sc: Scenario, cfg: SiteConfig, t0: datetime):
    bats = cfg.devices_of("battery")
    # the book's dispatch records: started/completed latch as in the service, so a wall-clock
    # step back neither sends a running dispatch back to pending nor replays a finished one
    windows = [(Dispatch(f"d{i}", DispatchRequest("scenario", "setpoint", t0 + timedelta(hours=d.start),
                                                  t0 + timedelta(hours=d.end), d.power_w),
                         "up" if d.power_w >= 0 else "down", "accepted", abs(d.power_w), (), t0, t0), d.power_w)
               for i, d in enumerate(sc.dispatches)]

    def requested(now: datetime) -> float | None:
        for d, p in windows:
            if d.active(now):
                return p
        return None

    def source(now: datetime) -> dict[str, Proposal]:
        p = requested(now)
        if p is None or not bats:
            return {}
        key = "max_discharge_w" if p > 0 else "max_charge_w"
        total = sum(getattr(b.ratings, key) for b in bats)
        return {b.id: Proposal("dispatch", p * getattr(b.ratings, key) / total, reason="aggregator dispatch")
                for b in bats}

    return source, requested


async def run_scenario(sc: Scenario, config: SiteConfig | None = None, *, speed: float | None = None,
                       hours: float | None = None, workdir: str | Path | None = None,
                       solve: Callable[[optimizer.Problem], optimizer.Schedule] | None = None,
                       on_progress: Callable[[float, float], None] | None = None) -> ScenarioResult:
    """Run ``sc`` (for ``hours`` instead of its duration, if given) and evaluate it.

    Parameters
    ----------
    config : the site config to prove (default: the scenario's own, with its patch).
    speed : simulated seconds per wall second at most; ``None`` = as fast as possible.
    workdir : where the embedded store and spool live (default: a temporary directory).
    solve : ``Problem -> Schedule`` (default: the config's ``optimiser.planner``, see
        :func:`vpp.control.fleet_planner.planner_for`; a generated town plans as a fleet).
    on_progress : ``(simulated s done, simulated s total)`` after each step.
    """
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix=f"vpp-scenario-{sc.name}-")
        workdir = tmp.name
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return await _run(sc, config or sc.site_config(), speed, hours, workdir, solve, on_progress)
    finally:
        if tmp is not None:
            tmp.cleanup()


async def _run(sc, config, speed, hours, workdir, solve, on_progress) -> ScenarioResult:
    cfg = prepare_config(config, workdir)
    cfg, echonet_sockets = on_free_block(cfg)  # ECHONET homes: a free 127.a.b.c block per run
    t0 = sc.start_utc()
    duration_s = 3600.0 * (hours if hours is not None else sc.duration_h)
    until = t0 + timedelta(seconds=duration_s)
    H = lambda h: t0 + timedelta(hours=h)  # noqa: E731
    clock = SimClock(t0, speed=0)
    truth = CloudTrace(sc.weather, t0, seed=sc.seed)
    site = SimulatedSite(cfg, clock, cloud=truth, seed=sc.seed, load_mean_w=sc.load_mean_w,
                         auto_ev_sessions=sc.auto_ev_sessions)
    site.island_load_w = sc.island_load_w
    site.echonet_sockets = echonet_sockets
    ocpp = OcppScenario(cfg, site, clock)  # the central system and stations when the chargers speak OCPP
    for m in site.models.values():
        if isinstance(m, BatteryModel):
            m.soc = sc.initial_soc
    store = open_store(cfg.storage, site=cfg.site.name, connect=False)
    pipeline = TelemetryPipeline(store, cfg.storage, spool_dir=workdir / "spool")
    # on the simulated clock: snapshot times and frozen-value detection follow simulated time
    fleet = DriverFleet(cfg, policy=PollPolicy(fail_threshold=1), clock=clock)
    telemetry = SimulatedTelemetry(fleet, clock, sink=pipeline.submit)
    forecast = None
    if sc.weather.forecast == "truth":
        forecast = TraceWeatherProvider(CloudTrace(sc.weather, t0, seed=sc.seed, scale=sc.weather.forecast_scale),
                                        cfg.site)
    source, requested = _dispatch_source(sc, cfg, t0)
    flaky = _FlakySolver(clock, [(H(w.start), H(w.end)) for w in sc.solver_outages], solve or planner_for(cfg))
    dt = float(cfg.optimiser.dispatch_interval_s)
    tl = _Timeline()
    shed_log: list[dict] = []

    def switch_load(group: str, on: bool) -> None:
        # the load groups' relays: the controller sheds and restores them through this
        site.switch_load(group, on)
        shed_log.append({"t": clock.now().isoformat(), "group": group, "on": on})
        tl.log.append({"t": clock.now().isoformat(), "event": f"load group {group} {'restored' if on else 'shed'}"})

    ctl = Controller(cfg, fleet=telemetry, clock=clock, store=store, weather=forecast, solve=flaky,
                     dispatch_source=source, stale_input_s=1.5 * dt,
                     load_switch=switch_load if site.switched else None)

    sessions: list[tuple[str, EvSession]] = []
    for o in sc.grid_outages:
        tl.add(H(o.start), "grid outage", lambda: setattr(site, "grid_outage", True))
        tl.add(H(o.end), "grid restored", lambda: setattr(site, "grid_outage", False))
    if sc.storm is not None:
        s = sc.storm
        tl.add(H(s.at), f"storm mode on: floor → {s.target_pct:.0f} % by +{s.deadline:g} h",
               lambda: ctl.storm.on(clock.now(), s.target_pct / 100.0, H(s.deadline), s.reason))
        if s.lifted is not None:
            tl.add(H(s.lifted), "storm mode off", ctl.storm.off)
    for f in sc.faults:
        tl.add(H(f.at), f"fault {f.fault} on {f.device}", lambda f=f: site.inject(f.device, f.fault))
        if f.clear is not None:
            tl.add(H(f.clear), f"fault cleared on {f.device}", lambda f=f: site.inject(f.device, None))
    for o in sc.storage_outages:
        tl.add(H(o.start), "storage outage", store.close)
        tl.add(H(o.end), "storage back", store.open)
    meter = cfg.grid_meter()
    for g in sc.meter_glitches:
        mid = g.device or (meter.id if meter is not None else None)
        forced = {k: v for k, v in (("voltage_v", g.voltage_v), ("frequency_hz", g.frequency_hz)) if v is not None}
        tl.add(H(g.start), f"meter glitch on {mid}: {forced}", lambda mid=mid, forced=forced:
               site.meter_glitch.__setitem__(mid, forced))
        tl.add(H(g.end), f"meter glitch over on {mid}", lambda mid=mid: site.meter_glitch.pop(mid, None))
    for c in sc.clock_steps:
        tl.add(H(c.at), f"wall clock steps {c.step_s:+.0f} s", lambda c=c: clock.step_wall(c.step_s))
    for o in sc.overrides:
        tl.add(H(o.at), f"override {o.device} → {o.setpoint_w:.0f} W for {o.minutes:g} min",
               lambda o=o: ctl.overrides.__setitem__(o.device, Override(
                   o.device, clock.now() + timedelta(minutes=o.minutes), setpoint_w=o.setpoint_w,
                   reason="scenario override")))
    for ev in sc.ev_arrivals:
        if ev.charger in site.ocpp.devices:
            async def plug_ocpp(ev=ev):
                session = await ocpp.plug(ev.charger, ev.need_wh, clock.now() + timedelta(hours=ev.stay_h))
                sessions.append((ev.charger, session))
                tl.add(clock.now() + timedelta(hours=ev.stay_h), f"EV leaves {ev.charger}",
                       lambda: ocpp.leave(session))
            tl.add(H(ev.at), f"EV arrives at {ev.charger} ({ev.need_wh / 1000:.0f} kWh, OCPP)", plug_ocpp)
            continue

        def plug(ev=ev):
            m = site.models[ev.charger]
            assert isinstance(m, EvChargerModel)
            m.plug(ev.need_wh, depart=clock.now() + timedelta(hours=ev.stay_h))
            sessions.append((ev.charger, m.session))
        tl.add(H(ev.at), f"EV arrives at {ev.charger} ({ev.need_wh / 1000:.0f} kWh)", plug)

    bat_ids = [b.id for b in cfg.devices_of("battery")]
    rows: list[dict] = []
    state = {"outage": False}
    gate_plans = GatePlans()

    def on_step(now: datetime, decisions) -> None:
        ms = site.models
        row: dict[str, Any] = {"t": now, "dt_s": dt, "outage": state["outage"],
                               "load_w": float(sum(site.load_w.values())),
                               "pv_w": float(sum(m.power_w for m in ms.values() if isinstance(m, PvModel))),
                               "ev_w": float(sum(m.power_w for m in ms.values() if isinstance(m, EvChargerModel)))
                               + ocpp.power_w(),
                               "battery_w": float(sum(m.power_w for m in ms.values() if isinstance(m, BatteryModel))),
                               "grid_w": site.grid_power_w(), "imbalance_w": site.island_imbalance_w,
                               "crit_w": site.critical_w() if site.switched else np.nan,
                               "storm_floor": float(ctl.storm.active)}
        req = requested(now)
        row["dispatch_w"] = np.nan if req is None else req
        by_dev = {d.device: d for d in decisions}
        plan_w = 0.0
        for b in cfg.devices_of("battery"):
            m = ms[b.id]
            row[f"soc:{b.id}"] = m.soc
            row[f"bat_w:{b.id}"] = m.power_w
            row[f"floor:{b.id}"] = float(ctl.floor_at(b, [now])[0])
            d = by_dev.get(b.id)
            row[f"source:{b.id}"] = d.source if d else "none"
            row[f"state:{b.id}"] = ctl.reserve[b.id].state.value
            row[f"setpoint:{b.id}"] = d.setpoint_w if d else 0.0
            pp, _ = ctl.plan_proposal(b.id, now)
            plan_w += pp.setpoint_w if pp is not None else np.nan
        row["plan_w"] = plan_w
        fc = ctl.forecast
        k = fc.index.searchsorted(pd.Timestamp(now), side="right") - 1 if fc is not None else -1
        row["pv_forecast_w"] = float(fc.pv_w.iloc[k]) if fc is not None and 0 <= k < len(fc.index) else np.nan
        row["alarms"] = len(ctl.alarms.active())
        rows.append(row)
        gate_plans.on_step(now, ctl.plan)  # 計画値同時同量: the plan in force at each gate closure

    wall0 = time.perf_counter()

    async def advance(step_s: float) -> None:
        await tl.apply_due(clock.now())
        state["outage"] = site.grid_outage
        site.step(step_s)
        if ocpp:
            await ocpp.flush()
        done = (clock.now() - t0).total_seconds()
        if speed is not None and speed > 0:
            lag = done / speed - (time.perf_counter() - wall0)
            if lag > 0:
                await asyncio.sleep(lag)
        if on_progress is not None:
            on_progress(done, duration_s)

    await site.start()
    await pipeline.start()
    try:
        if ocpp:
            telemetry.fleet = await ocpp.start(fleet)
            ocpp.wire(ctl)
        await run_simulated(ctl, until, advance, refresh=telemetry.refresh, on_step=on_step)
        wall = time.perf_counter() - wall0
        if not store_is_open(store):
            store.open()  # a storage outage still open at the end: let the spool drain
        await pipeline.flushed(timeout=15)
    finally:
        await ocpp.stop()
        await fleet.stop()
        await pipeline.stop()
        await site.stop()
        store.close()

    rec = pd.DataFrame(rows).set_index("t")
    rec.index = pd.DatetimeIndex(rec.index)
    tariff = expand_tariff(cfg.tariff, pd.DatetimeIndex(rec.index.floor("15min").unique()), cfg.site.timezone)
    pm = dict(pipeline.metrics)
    pm["unwritten"] = pm.get("queued", 0)
    kpis, slots = compute_kpis(rec, bat_ids, import_limit_w=cfg.grid.import_limit_w,
                               critical_load_w=cfg.reserve.critical_load_w, tariff=tariff,
                               slot_s=cfg.vpp.slot_s, pipeline=pm)
    kpis.update(clock_kpis(rec, bat_ids, dt))
    kpis["clock_alarms"] = float(sum(a.key == "clock" for a in ctl.alarms.history()) + ctl.alarms.is_active("clock"))
    kpis["meter_alarms"] = float(sum(a.key == "grid:reading" for a in ctl.alarms.history())
                                 + ctl.alarms.is_active("grid:reading"))
    kpis.update(outage_kpis(rec, bat_ids, shed_log))
    kpis["ev_unserved_kwh"] = float(sum(max(s.need_wh - s.delivered_wh, 0.0) for _, s in sessions) / 1000.0)
    kpis["pv_bias_overall"] = float(ctl.bias.overall)
    kpis.update(gate_plans.kpis(rec, cfg))
    kpis["plans_made"] = float(flaky.solved)
    kpis["spool_bytes_left"] = float(pm.get("spool_bytes", 0))
    kpis["wall_s"] = wall
    kpis["speedup"] = duration_s / wall if wall > 0 else math.inf
    return ScenarioResult(sc, cfg, kpis, check(kpis, sc.assertions), rec, slots, bat_ids, tl.log,
                          wall, duration_s, shed_order=[e["group"] for e in shed_log if not e["on"]])


def _activations(flags: pd.Series) -> int:
    """How often ``flags`` (bool per step) turns on."""
    f = flags.astype(bool).to_numpy()
    return int(f[0]) + int(np.sum(f[1:] & ~f[:-1])) if len(f) else 0


def clock_kpis(rec: pd.DataFrame, batteries: list[str], dt_s: float) -> dict[str, float]:
    """Per-step counts that show a replay: how often the dispatch, an override and storm mode
    became active, and the seconds any battery's reserve state machine spent in OUTAGE."""
    override = np.zeros(len(rec), dtype=bool)
    outage = np.zeros(len(rec), dtype=bool)
    for b in batteries:
        override |= (rec[f"source:{b}"] == "override").to_numpy()
        outage |= (rec[f"state:{b}"] == "outage").to_numpy()
    return {"dispatch_activations": float(_activations(rec["dispatch_w"].notna())),
            "dispatch_minutes": float(rec["dispatch_w"].notna().sum() * dt_s / 60.0),
            "override_activations": float(_activations(pd.Series(override))),
            "override_minutes": float(override.sum() * dt_s / 60.0),
            "storm_activations": float(_activations(rec["storm_floor"] > 0)),
            "reserve_outage_s": float(outage.sum() * dt_s)}


def store_is_open(store) -> bool:
    return getattr(store, "_conn", True) is not None

