"""The control loop: a :class:`Controller` holding one site's state and running its jobs
(forecast, plan, dispatch) as short recipes over the functions that do the work.

Polling belongs to the driver fleet (one poller per connection) and storage to the telemetry
pipeline; the jobs here only read the fleet's latest snapshots, the store's history and the
clock, and write battery setpoints as *leases*: every write carries ``revert_s`` so a device
whose setpoint is not renewed reverts to idle on its own.

Data flow of one dispatch step::

    read_image (every device once, usable?)                      vpp.control.image
      ─► a car the plan does not know? ─► re-plan (same image)
      ─► decide_batteries: reserve ─► override ─► dispatch ─► plan ─► fallback
                                                                 vpp.control.decide
      ─► ev_commands: the plan's EV power as current limits      vpp.control.ev
      ─► hold_grid_limit: EV cut, battery ``grid`` window, PV curtailment
                                                                 vpp.control.gridlimit
      ─► alarms applied ─► set_power(setpoint, revert_s=lease_s), current limits, PV limits

The forecast job is :func:`vpp.forecast.site.forecast_site`; the plan job builds its problem
with :func:`vpp.control.problem.build_problem` (floors from :mod:`vpp.control.reserve`) and
solves it with the configured planner. The job bodies take no arguments and read the time from
the injected clock, so the same code runs under APScheduler (:mod:`vpp.control.scheduler`) or
a simulated-clock loop.

One plan at a time: every planning run (the scheduled plan, the API's re-plan, a new car's
re-plan, a forecast refresh) computes under one lock (``Controller.planning``) and touches no
shared state while it does; it returns a :class:`PlanOutcome` that is applied afterwards
(:meth:`Controller.apply_plan`), on the event loop for the async entry points
(:meth:`Controller.replan`, :meth:`Controller.refresh_forecast`: the solve runs in a worker
thread, alarms, plan, forecast and EV plugs change only on the loop). An outcome planned from
inputs older than the plan in force is discarded, so a slow solve can never replace a newer
plan. The sync :meth:`Controller.plan_job` / :meth:`Controller.forecast_job` are for callers
without a running event loop (simulated-clock runs, ``vpp plan``, tests).
"""
from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import numpy as np
import pandas as pd

import optimizer
from drivers.protocols import Snapshot
from vpp.config import Device, Reserve, SiteConfig
from vpp.control import ev as evpolicy
from vpp.control.alarms import AWARD_KEY, AlarmChange, Alarms, award_at_risk_reason, clear_alarm, raise_alarm
from vpp.control.bounds import Decision, Override, Proposal
from vpp.control.clockwatch import CLOCK_KEY, ClockWatch
from vpp.control.decide import decide_batteries, plan_proposal
from vpp.control.ev import EvCommand
from vpp.control.fleet_planner import planner_for
from vpp.control.freshness import usable
from vpp.control.gridlimit import hold_grid_limit
from vpp.control.image import ProcessImage, read_image
from vpp.control.outage import OutageDetector, OutageEvent
from vpp.control.problem import Plan, build_problem, problem_horizon, slot_times
from vpp.control.reserve import ReserveStateMachine, StormMode, base_floor, battery_floor
from vpp.forecast.pv import BiasCorrector
from vpp.forecast.site import (  # noqa: F401 - re-exported: their home is vpp.forecast.site
    Forecast, default_daily_load_wh, forecast_site, site_load_history, site_pv, site_pv_history,
)
from vpp.forecast.weather import WeatherProvider
from vpp.slots import floor_time

log = logging.getLogger(__name__)

__all__ = ["Clock", "SystemClock", "Fleet", "Lease", "Controller", "PlanOutcome", "Forecast", "Plan", "EvCommand",
           "floor_time", "default_daily_load_wh", "site_load_history", "site_pv", "site_pv_history"]


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall clock (UTC), with the monotonic clock durations are measured on."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()


class Fleet(Protocol):
    """What the loop needs from the driver fleet."""

    def latest(self, device_id: str) -> Snapshot | None: ...

    def device(self, device_id: str) -> Any: ...  # has ``async set_power(watts, revert_s)``


@dataclass
class Lease:
    """A setpoint written to a device; it reverts to idle at ``expires_at`` unless renewed.
    ``expires_mono`` is the same instant on the clock's monotonic seconds (None: unknown),
    which a wall-clock step does not move."""

    device: str
    setpoint_w: float
    source: str
    written_at: datetime
    expires_at: datetime
    expires_mono: float | None = None

    def expired(self, mono_now: float | None = None, now: datetime | None = None) -> bool:
        """Whether the device has reverted: by the monotonic clock when known, else the wall clock."""
        if self.expires_mono is not None and mono_now is not None:
            return mono_now >= self.expires_mono
        return now is not None and now >= self.expires_at


@dataclass(frozen=True)
class PlanOutcome:
    """What one planning run produced, to apply with :meth:`Controller.apply_plan`.

    ``inputs_at`` is the time of the process image it planned from; ``plan`` the new plan
    (None: none, ``alarms`` say why); ``forecast`` / ``bias`` a forecast made on the way (None:
    the one in force was used) with its alarm changes ``forecast_alarms``; ``ev_plugs`` the
    plugs known after this run (None: not read)."""

    inputs_at: datetime
    plan: Plan | None = None
    alarms: tuple[AlarmChange, ...] = ()
    forecast: Forecast | None = None
    bias: BiasCorrector | None = None
    forecast_alarms: tuple[AlarmChange, ...] = ()
    ev_plugs: Mapping[str, evpolicy.EvPlug] | None = None


@dataclass
class Controller:
    """Parameters and state of one site's control loop.

    Parameters
    ----------
    config : SiteConfig
    fleet : Fleet or None
        Latest snapshots and device handles; ``None`` for planning only (``vpp plan``).
    clock : Clock
        ``now()`` in UTC; a :class:`simulators.clock.SimClock` for simulated runs.
    store : Store or None
        For load history (``query``) and, without a fleet, the latest SoC (``latest``).
    weather : WeatherProvider or None
        ``None`` plans with clear sky (flagged).
    solve : callable, optional
        ``Problem -> Schedule``; default: the planner ``config.optimiser.planner`` selects
        (:func:`vpp.control.fleet_planner.planner_for`: one site LP, or fleet planning).
    dispatch_source : callable, optional
        ``now -> {device id: Proposal}`` from the VPP layer (aggregator dispatches).
    ev_policy : EvPolicy
        What a connected car is assumed to need and when it leaves (:mod:`vpp.control.ev`).
    commitments_source : callable, optional
        ``(plan start, Horizon) -> VppCommitments | None``: awarded capacity per slot of the
        horizon, which every plan keeps deliverable (SoC headroom, power, grid room) as far as
        physics and the reserve floor allow; what it cannot keep raises alarm ``award``.
    stale_input_s : float
        A snapshot older than this [s] (or not GOOD) is not used for control.
    reserve_source : callable, optional
        ``() -> Reserve``: the reserve in force (the operator's floor,
        :meth:`vpp.control.reserve_policy.ReservePolicy.reserve`); default ``config.reserve``.
    """

    config: SiteConfig
    fleet: Fleet | None = None
    clock: Clock = field(default_factory=SystemClock)
    store: Any = None
    weather: WeatherProvider | None = None
    solve: Callable[[optimizer.Problem], optimizer.Schedule] | None = None
    dispatch_source: Callable[[datetime], Mapping[str, Proposal]] | None = None
    commitments_source: Callable[[datetime, optimizer.Horizon], optimizer.VppCommitments | None] | None = None
    stale_input_s: float = 30.0
    reserve_source: Callable[[], Reserve] | None = None
    alarms: Alarms = field(default_factory=Alarms)
    storm: StormMode = field(default_factory=StormMode)
    overrides: dict[str, Override] = field(default_factory=dict)
    forecast: Forecast | None = None
    plan: Plan | None = None
    leases: dict[str, Lease] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)
    reserve: dict[str, ReserveStateMachine] = field(default_factory=dict)
    outage: bool | None = None  #: forced grid state (None: detect from the grid meter)
    #: debounced grid state from the meter (:mod:`vpp.control.outage`); default from ``config.outage_detection``
    outage_detector: OutageDetector | None = None
    #: called with every outage start/end and BAD-reading episode (the runtime records them in the ledger)
    on_outage_event: Callable[[OutageEvent], None] | None = None
    #: wall vs monotonic time (alarm ``clock``); default when the clock has ``monotonic()``
    clock_watch: ClockWatch | None = None
    bias: BiasCorrector = field(default_factory=BiasCorrector)
    ev_policy: evpolicy.EvPolicy = field(default_factory=evpolicy.EvPolicy)
    ev_plugs: dict[str, evpolicy.EvPlug] = field(default_factory=dict)
    ev_commands: dict[str, EvCommand] = field(default_factory=dict)
    pv_limits: dict[str, float] = field(default_factory=dict)  #: PV curtailment of this step [W]
    _replan_tried: set[str] = field(default_factory=set)
    #: held by every planning run (plan, re-plan, forecast) while it computes
    planning: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.solve is None:
            self.solve = planner_for(self.config)
        r = self.config.reserve
        self.storm.lead = timedelta(hours=r.storm_lead_h)
        self.storm.target = r.storm_target_pct / 100.0
        step_s = self.config.optimiser.dispatch_interval_s
        if self.outage_detector is None:
            self.outage_detector = OutageDetector(self.config.outage_detection)
        self.outage_detector.on_event = self._outage_event
        mono = getattr(self.clock, "monotonic", None)
        if self.clock_watch is None and callable(mono):
            self.clock_watch = ClockWatch(self.config.clock.step_alarm_s, mono)
        for b in self.batteries:
            self.reserve.setdefault(b.id, ReserveStateMachine.for_battery(b, r, step_s, self.config.optimiser.lease_s))

    # ------------------------------------------------------------------ reading the site
    @property
    def batteries(self) -> list[Device]:
        return self.config.devices_of("battery")

    @property
    def chargers(self) -> list[Device]:
        return self.config.devices_of("ev_charger")

    def now(self) -> datetime:
        return self.clock.now()

    def image(self, now: datetime | None = None, detect: bool = True) -> ProcessImage:
        """The process image at ``now`` (default: the clock's): every device read once.
        ``detect``: feed the grid meter's sample to the outage detector (the dispatch step
        does); else the image carries the detector's current state (the plan job, which may
        run in a worker thread)."""
        if detect:
            return read_image(self.config, now or self.now(), fleet=self.fleet, store=self.store,
                              max_age_s=self.stale_input_s, outage=self.outage, detector=self.outage_detector)
        return read_image(self.config, now or self.now(), fleet=self.fleet, store=self.store,
                          max_age_s=self.stale_input_s, outage=self.grid_down)

    @property
    def grid_down(self) -> bool:
        """The grid state the controller acts on: forced (``outage``) or debounced from the meter."""
        if self.outage is not None:
            return self.outage
        return self.outage_detector is not None and self.outage_detector.outage

    def monotonic(self) -> float | None:
        """The clock's monotonic seconds [s] (None when it has none)."""
        mono = getattr(self.clock, "monotonic", None)
        return float(mono()) if callable(mono) else None

    def watch_clock(self, now: datetime) -> float:
        """Compare the wall and monotonic clocks (:class:`~vpp.control.clockwatch.ClockWatch`):
        alarm ``clock`` on a step larger than ``config.clock.step_alarm_s``; returns the step [s]."""
        if self.clock_watch is None:
            return 0.0
        step = self.clock_watch.check(now)
        if self.clock_watch.exceeded(step):
            self.alarms.raise_(CLOCK_KEY, f"wall clock stepped {step:+.0f} s against the monotonic clock", now)
        return step

    def _outage_event(self, ev: OutageEvent) -> None:
        if ev.kind == "bad_reading":
            self.alarms.raise_("grid:reading", f"grid meter reading rejected: {ev.reason}", ev.at)
        elif ev.kind == "reading_ok":
            self.alarms.clear("grid:reading", ev.at, ev.reason)
        elif ev.kind == "outage_start":
            self.alarms.raise_("grid", f"grid outage: {ev.reason}", ev.at)
        elif ev.kind == "outage_end":
            self.alarms.clear("grid", ev.at, ev.reason)
        if self.on_outage_event is not None:
            try:
                self.on_outage_event(ev)
            except Exception:  # noqa: BLE001 - a failing ledger must not stop detection
                log.exception("outage event callback failed")

    def snapshot(self, device_id: str, now: datetime) -> tuple[Snapshot | None, str]:
        """Latest usable snapshot of one device and, if unusable, why (for callers outside
        a dispatch step; the step itself reads :meth:`image`)."""
        snap = self.fleet.latest(device_id) if self.fleet is not None else None
        if snap is None and self.store is not None and self.fleet is None:
            snap = self.store.latest(device_id).get(device_id)
        return usable(snap, now, self.stale_input_s)

    def grid_meter(self) -> Device | None:
        return self.config.grid_meter()

    def reserve_in_force(self) -> Reserve:
        """The reserve settings in force: the operator's floor (``reserve_source``) or the config's."""
        return self.reserve_source() if self.reserve_source is not None else self.config.reserve

    def base_floor(self, battery: Device) -> float:
        r = battery.ratings
        return base_floor(self.reserve_in_force(), r.capacity_wh, r.soc_max)

    def floor_at(self, battery: Device, times: list[datetime]) -> np.ndarray:
        """Reserve floor [fraction] for ``battery`` at ``times`` (storm mode included)."""
        return battery_floor(self.reserve_in_force(), battery, times, self.storm)

    def ev_sessions(self, now: datetime, horizon: optimizer.Horizon,
                    image: ProcessImage | None = None) -> list[optimizer.EvSession]:
        """One session per charger with a car connected (:func:`vpp.control.ev.ev_sessions`);
        remembers plug-in times and forgets unplugged cars (``ev_plugs``)."""
        image = image if image is not None else self.image(now, detect=False)
        sessions, plugs = evpolicy.ev_sessions(image, self.chargers, horizon, self.ev_plugs,
                                               self.config.site.timezone, self.ev_policy)
        self.ev_plugs.clear()
        self.ev_plugs.update(plugs)
        return sessions

    # ------------------------------------------------------------------ forecast job
    def forecast_job(self) -> Forecast:
        """Forecast PV, load and tariff for the optimiser horizon from the current slot
        (:func:`vpp.forecast.site.forecast_site`); alarms ``forecast:load`` and
        ``forecast:weather`` say what it had to do without. For callers without a running
        event loop; from the loop, ``await`` :meth:`refresh_forecast`."""
        now = self.now()
        with self.planning:
            out = self._forecast_outcome(now)
        self.apply_plan(out)
        return out.forecast  # type: ignore[return-value]

    async def refresh_forecast(self) -> Forecast | None:
        """:meth:`forecast_job` from the event loop: computed in a worker thread under the
        planning lock, applied on the loop (unless a newer forecast is in force)."""
        now = self.now()

        def compute() -> PlanOutcome:
            with self.planning:
                return self._forecast_outcome(now)

        out = await asyncio.to_thread(compute)
        self.apply_plan(out)
        return out.forecast

    def _forecast_outcome(self, now: datetime) -> PlanOutcome:
        """A forecast from ``now`` and its alarm changes (planning lock held; no shared state changed)."""
        fc, bias = forecast_site(self.config, now, store=self.store, weather=self.weather, bias=self.bias)
        changes = []
        if fc.load_history_error:
            changes.append(raise_alarm("forecast:load", f"load history unavailable: {fc.load_history_error}"))
        if fc.load_from_history:
            changes.append(clear_alarm("forecast:load", "history available"))
        if fc.weather_fallback:
            changes.append(raise_alarm("forecast:weather", fc.weather_reason, "info"))
        else:
            changes.append(clear_alarm("forecast:weather", "weather available"))
        return PlanOutcome(now, forecast=fc, bias=bias, forecast_alarms=tuple(changes))

    # ------------------------------------------------------------------ plan job
    def commitments(self, horizon: optimizer.Horizon, now: datetime) -> optimizer.VppCommitments | None:
        """The VPP commitments over ``horizon`` (None without a source; alarm
        ``commitments`` when the source fails: the plan then ignores them)."""
        vpp, change = self._commitments(horizon)
        if change is not None:
            self.alarms.apply([change], now)
        return vpp

    def _commitments(self, horizon: optimizer.Horizon) -> tuple[optimizer.VppCommitments | None, AlarmChange | None]:
        if self.commitments_source is None:
            return None, None
        try:
            vpp = self.commitments_source(horizon.start, horizon)
        except Exception as e:  # noqa: BLE001 - plan without them, loudly
            return None, raise_alarm("commitments", f"VPP commitments unavailable, plan ignores them: {e}")
        return vpp, clear_alarm("commitments", "commitments read")

    def build_problem(self, now: datetime, fc: Forecast, soc: Mapping[str, float],
                      image: ProcessImage | None = None) -> optimizer.Problem:
        """MPC problem from the current slot (:func:`vpp.control.problem.build_problem`) with
        this controller's floors (storm mode), commitments and connected cars (applies the
        alarm and EV plug changes; the planning runs use :meth:`_problem`)."""
        problem, plugs, changes = self._problem(now, fc, soc, image)
        self.alarms.apply(changes, now)
        self.ev_plugs.clear()
        self.ev_plugs.update(plugs)
        return problem

    def _problem(self, now: datetime, fc: Forecast, soc: Mapping[str, float], image: ProcessImage | None
                 ) -> tuple[optimizer.Problem, dict[str, evpolicy.EvPlug], list[AlarmChange]]:
        """:meth:`build_problem` without side effects: the problem, the EV plugs known after
        it and the alarm changes."""
        horizon = problem_horizon(self.config, fc, now)
        times = slot_times(horizon)
        floors = {b.id: self.floor_at(b, times) for b in self.batteries}
        vpp, change = self._commitments(horizon)
        image = image if image is not None else self.image(now)
        evs, plugs = evpolicy.ev_sessions(image, self.chargers, horizon, dict(self.ev_plugs),
                                          self.config.site.timezone, self.ev_policy)
        problem = build_problem(self.config, fc, soc, floors, vpp, start=now, evs=evs)
        return problem, plugs, [change] if change is not None else []

    def plan_job(self, image: ProcessImage | None = None) -> Plan | None:
        """Re-plan from measured SoC. On failure the previous plan is kept (the dispatch step
        falls back once it is stale) and alarm ``plan`` says why. Returns the new plan (None:
        failed, or discarded as older than the plan in force). For callers without a running
        event loop; from the loop, ``await`` :meth:`replan`."""
        image = image if image is not None else self.image(detect=False)
        return self.apply_plan(self.compute_plan(image))

    async def replan(self, image: ProcessImage | None = None) -> Plan | None:
        """Re-plan now from the event loop: one plan at a time (the planning lock), solved in a
        worker thread, applied on the loop; see :meth:`plan_job` for the result."""
        image = image if image is not None else self.image(detect=False)
        return self.apply_plan(await asyncio.to_thread(self.compute_plan, image))

    def compute_plan(self, image: ProcessImage) -> PlanOutcome:
        """Plan from ``image`` under the planning lock, changing no shared state (a stale
        forecast is re-made on the way and returned with the plan)."""
        with self.planning:
            return self._plan_outcome(image)

    def _plan_outcome(self, image: ProcessImage) -> PlanOutcome:
        now = image.at
        o = self.config.optimiser
        fc, made = self.forecast, PlanOutcome(now)
        if fc is None or (now - fc.made_at) > timedelta(hours=2) or \
                fc.index[-1] < pd.Timestamp(floor_time(now, o.slot_s)) + pd.Timedelta(hours=o.horizon_h / 2):
            made = self._forecast_outcome(now)
            fc = made.forecast

        def failed(why: str, changes: Sequence[AlarmChange] = (),
                   plugs: Mapping[str, evpolicy.EvPlug] | None = None) -> PlanOutcome:
            return PlanOutcome(now, None, (*changes, raise_alarm("plan", why)), made.forecast, made.bias,
                               made.forecast_alarms, plugs)

        soc: dict[str, float] = {}
        for b in self.batteries:
            soc[b.id] = image.soc(b.id)
            if not math.isfinite(soc[b.id]):
                why = image.reading(b.id).why or "soc missing"
                return failed(f"no SoC for {b.id} ({why}); plan not updated")
        problem, plugs, changes = self._problem(now, fc, soc, image)
        t0 = time.perf_counter()
        try:
            sched = self.solve(problem)
        except Exception as e:  # noqa: BLE001 - any solver failure means: keep old plan, fall back
            return failed(f"optimiser failed: {type(e).__name__}: {e}", changes, plugs)
        took = time.perf_counter() - t0
        if sched.solver is not None and not sched.solver.validated:
            return failed("optimiser plan failed validation: " + "; ".join(sched.warnings[-3:]), changes, plugs)
        if took > 2 * o.time_limit_s:
            return failed(f"optimiser took {took:.1f} s (limit {o.time_limit_s:.0f} s)", changes, plugs)
        changes += [clear_alarm("plan", "plan updated"), self._award_change(sched)]
        return PlanOutcome(now, Plan(sched, now, problem), tuple(changes), made.forecast, made.bias,
                           made.forecast_alarms, plugs)

    def apply_plan(self, out: PlanOutcome) -> Plan | None:
        """Apply a planning run's outcome (on the event loop when one runs): a forecast newer
        than the one in force replaces it; the plan, its alarm changes and the EV plugs only if
        it was planned from inputs no older than the plan in force (else it is discarded and
        None returned). Returns the plan applied."""
        if out.forecast is not None and (self.forecast is None or out.forecast.made_at >= self.forecast.made_at):
            self.forecast = out.forecast
            if out.bias is not None:
                self.bias = out.bias
            self.alarms.apply(out.forecast_alarms, out.inputs_at)
        if out.plan is None and not out.alarms:
            return None  # a forecast refresh
        in_force = self.plan
        if in_force is not None and out.inputs_at < in_force.made_at:
            log.warning("plan from inputs at %s discarded: the plan in force is newer (%s)",
                        out.inputs_at.isoformat(), in_force.made_at.isoformat())
            return None
        self.alarms.apply(out.alarms, out.inputs_at)
        if out.ev_plugs is not None:
            self.ev_plugs.clear()
            self.ev_plugs.update(out.ev_plugs)
        if out.plan is not None:
            self.plan = out.plan
        return out.plan

    def award_alarm(self, sched: optimizer.Schedule, now: datetime) -> None:
        """Alarm ``award`` ("award at risk") while the accepted plan reports a VPP award
        shortfall (:meth:`optimizer.Schedule.award_at_risk`: SoC, power or grid room short
        after the award was accepted; the reserve floor is never given up for it); cleared by
        the next plan that keeps every award again."""
        self.alarms.apply([self._award_change(sched)], now)

    def _award_change(self, sched: optimizer.Schedule) -> AlarmChange:
        risk = sched.award_at_risk()
        if risk:
            return raise_alarm(AWARD_KEY, award_at_risk_reason(risk, sched.start, sched.slot_s,
                                                               self.config.site.timezone))
        return clear_alarm(AWARD_KEY, "plan keeps every accepted award")

    # ------------------------------------------------------------------ dispatch job
    def plan_proposal(self, device_id: str, now: datetime) -> tuple[Proposal | None, str]:
        """The plan's setpoint for ``now`` or why there is none usable."""
        return plan_proposal(self.plan, device_id, now, self.config.optimiser.stale_plan_s)

    def decide(self, now: datetime | None = None, image: ProcessImage | None = None) -> list[Decision]:
        """Compose this step's decision per battery, EV current limits and PV limits over the
        process image (read at ``now`` unless given); applies the alarm changes and keeps
        ``decisions``, ``ev_commands``, ``pv_limits``. No device writes."""
        image = image if image is not None else self.image(now)
        now = image.at
        bats = self.batteries
        floors = {b.id: float(self.floor_at(b, [now])[0]) for b in bats}
        self._expire_overrides(now)
        dispatch = dict(self.dispatch_source(now)) if self.dispatch_source else {}
        step = decide_batteries(image, bats, self.plan, reserve=self.reserve, floors=floors,
                                overrides=self.overrides, dispatch=dispatch,
                                stale_plan_s=self.config.optimiser.stale_plan_s, mono=self.monotonic())
        self.alarms.apply(step.alarms, now)
        for k in step.expired_overrides:
            self.overrides.pop(k, None)
        decisions = step.decisions
        self.ev_commands = self.ev_step(now, image)
        self.pv_limits = {}
        if image.grid_ok and math.isfinite(image.grid_w):
            g = hold_grid_limit(self.config, image, decisions, step.windows, self.ev_commands)
            decisions, self.ev_commands, self.pv_limits = g.decisions, g.ev_commands, g.pv_limits
            self.alarms.apply(g.alarms, now)
        self.decisions.update((d.device, d) for d in decisions)
        return decisions

    def _expire_overrides(self, now: datetime) -> None:
        """Overrides last their length on the monotonic clock: stamp each new one's monotonic
        expiry and drop those past it (a wall-clock step back must not extend or revive one)."""
        mono = self.monotonic()
        if mono is None:
            return
        for k, ov in list(self.overrides.items()):
            if ov.expires_mono is None:
                ov.expires_mono = mono + (ov.expires_at - now).total_seconds()
            if not ov.active(now, mono):
                self.overrides.pop(k, None)

    def ev_step(self, now: datetime, image: ProcessImage | None = None) -> dict[str, EvCommand]:
        """Current limit per charger with a usable reading (:func:`vpp.control.ev.ev_commands`)."""
        image = image if image is not None else self.image(now)
        return evpolicy.ev_commands(image, self.chargers, self.plan, self.ev_plugs,
                                    self.config.optimiser.stale_plan_s)

    def unplanned_cars(self, now: datetime, image: ProcessImage | None = None) -> list[str]:
        """Chargers with a car connected that the current plan has no session for and that
        have not triggered a re-plan yet (cleared when the car leaves)."""
        if self.plan is None:
            return []
        image = image if image is not None else self.image(now)
        planned = {s.charger_id for s in self.plan.problem.evs}
        new, left = evpolicy.unplanned_cars(image, self.chargers, planned, self._replan_tried)
        self._replan_tried.difference_update(left)
        return new

    async def dispatch_job(self) -> list[Decision]:
        """Decide and write every battery setpoint as a lease (``revert_s`` = ``lease_s``),
        every charger's current limit and any PV curtailment. A car that arrived since the
        last plan triggers a re-plan first (in a worker thread, on the same process image),
        so it does not charge at full current until the next scheduled plan."""
        image = self.image()
        now = image.at
        stepped = self.clock_watch is not None and self.clock_watch.exceeded(self.watch_clock(now))
        new_cars = self.unplanned_cars(now, image)
        if new_cars:
            self._replan_tried.update(new_cars)
        if new_cars or stepped:  # a plan made before a clock step has the wrong slots: re-plan now
            await self.replan(image)
        decisions = self.decide(now, image)
        if self.fleet is None:
            return decisions
        lease_s = self.config.optimiser.lease_s
        for d in decisions:
            if await self._write(d.device, "setpoint", now,
                                 lambda dev, d=d: dev.set_power(d.setpoint_w, revert_s=lease_s)):
                self.leases[d.device] = Lease(d.device, d.setpoint_w, d.source, now, now + timedelta(seconds=lease_s),
                                              self._mono_after(lease_s))
        for cid, cmd in self.ev_commands.items():
            raw = image.reading(cid).raw
            in_force = raw.values.get("current_limit_a") if raw is not None else None
            if in_force is not None and abs(in_force - cmd.amps) < 0.05:
                continue  # EVSEs have no revert timer: write only changes
            await self._write(cid, "current limit", now, lambda dev, a=cmd.amps: dev.set_current_limit(a))
        for pid, w in self.pv_limits.items():
            if await self._write(pid, "PV limit", now, lambda dev, w=w: dev.set_power_limit(w, revert_s=lease_s)):
                self.leases[pid] = Lease(pid, w, "grid", now, now + timedelta(seconds=lease_s), self._mono_after(lease_s))
        return decisions

    def _mono_after(self, seconds: float) -> float | None:
        m = self.monotonic()
        return m + seconds if m is not None else None

    async def _write(self, device_id: str, what: str, now: datetime, call: Callable[[Any], Awaitable[Any]]) -> bool:
        """Await ``call(device handle)``; alarm ``write:<id>`` on failure (one device failing
        must not stop the others), clear it on success."""
        try:
            await call(self.fleet.device(device_id))
        except Exception as e:  # noqa: BLE001
            self.alarms.raise_(f"write:{device_id}", f"{what} write failed: {type(e).__name__}: {e}", now)
            return False
        self.alarms.clear(f"write:{device_id}", now, "write ok")
        return True
