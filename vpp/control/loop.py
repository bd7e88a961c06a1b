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
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import numpy as np
import pandas as pd

import optimizer
from drivers.protocols import Snapshot
from vpp.config import Device, Reserve, SiteConfig
from vpp.control import ev as evpolicy
from vpp.control.alarms import AWARD_KEY, Alarms, award_at_risk_reason
from vpp.control.bounds import Decision, Override, Proposal
from vpp.control.decide import decide_batteries, plan_proposal
from vpp.control.ev import EvCommand
from vpp.control.fleet_planner import planner_for
from vpp.control.freshness import usable
from vpp.control.gridlimit import hold_grid_limit
from vpp.control.image import ProcessImage, read_image
from vpp.control.problem import Plan, build_problem, problem_horizon, slot_times
from vpp.control.autonomy import Autonomy, LoadShedder, live_autonomy, outage_inputs
from vpp.control.island import island_ev_commands, island_pv_limits
from vpp.control.reserve import (ReserveStateMachine, StormMode, base_floor, battery_floor, capacity_shares,
                                 capped_floor_warnings)
from vpp.forecast.pv import BiasCorrector
from vpp.forecast.site import (  # noqa: F401 - re-exported: their home is vpp.forecast.site
    Forecast, default_daily_load_wh, forecast_site, site_load_history, site_pv, site_pv_history,
)
from vpp.forecast.weather import WeatherProvider
from vpp.slots import floor_time

log = logging.getLogger(__name__)

__all__ = ["Clock", "SystemClock", "Fleet", "Lease", "Controller", "Forecast", "Plan", "EvCommand", "floor_time",
           "default_daily_load_wh", "site_load_history", "site_pv", "site_pv_history"]


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall clock (UTC)."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class Fleet(Protocol):
    """What the loop needs from the driver fleet."""

    def latest(self, device_id: str) -> Snapshot | None: ...

    def device(self, device_id: str) -> Any: ...  # has ``async set_power(watts, revert_s)``


@dataclass
class Lease:
    """A setpoint written to a device; it reverts to idle at ``expires_at`` unless renewed."""

    device: str
    setpoint_w: float
    source: str
    written_at: datetime
    expires_at: datetime


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
    bias: BiasCorrector = field(default_factory=BiasCorrector)
    ev_policy: evpolicy.EvPolicy = field(default_factory=evpolicy.EvPolicy)
    ev_plugs: dict[str, evpolicy.EvPlug] = field(default_factory=dict)
    ev_commands: dict[str, EvCommand] = field(default_factory=dict)
    pv_limits: dict[str, float] = field(default_factory=dict)  #: PV curtailment of this step [W]
    #: ``(group id, on)`` switches a load group's relay (None: shed state is reported only)
    load_switch: Callable[[str, bool], Any] | None = None
    shedder: LoadShedder | None = None
    autonomy: Autonomy | None = None  #: live autonomy of the last step
    plan_grid_ok: bool | None = None  #: grid state the plan in force was made for
    _replan_tried: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.solve is None:
            self.solve = planner_for(self.config)
        r = self.config.reserve
        self.storm.lead = timedelta(hours=r.storm_lead_h)
        self.storm.target = r.storm_target_pct / 100.0
        step_s = self.config.optimiser.dispatch_interval_s
        for b in self.batteries:
            self.reserve.setdefault(b.id, ReserveStateMachine.for_battery(b, r, step_s))
        self.critical_shares = capacity_shares(self.batteries)
        if self.shedder is None:
            self.shedder = LoadShedder(self.config)
        for w in capped_floor_warnings(self.config):
            log.warning("reserve: %s", w)

    # ------------------------------------------------------------------ reading the site
    @property
    def batteries(self) -> list[Device]:
        return self.config.devices_of("battery")

    @property
    def chargers(self) -> list[Device]:
        return self.config.devices_of("ev_charger")

    def now(self) -> datetime:
        return self.clock.now()

    def image(self, now: datetime | None = None) -> ProcessImage:
        """The process image at ``now`` (default: the clock's): every device read once."""
        return read_image(self.config, now or self.now(), fleet=self.fleet, store=self.store,
                          max_age_s=self.stale_input_s, outage=self.outage)

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
        """Base floor [fraction] of ``battery`` (its capacity share of the critical load)."""
        return base_floor(self.reserve_in_force(), battery.ratings, self.critical_shares.get(battery.id, 1.0))

    def floor_at(self, battery: Device, times: list[datetime]) -> np.ndarray:
        """Reserve floor [fraction] for ``battery`` at ``times`` (storm mode included)."""
        return battery_floor(self.reserve_in_force(), battery, times, self.storm,
                             self.critical_shares.get(battery.id, 1.0))

    def ev_sessions(self, now: datetime, horizon: optimizer.Horizon,
                    image: ProcessImage | None = None) -> list[optimizer.EvSession]:
        """One session per charger with a car connected (:func:`vpp.control.ev.ev_sessions`);
        remembers plug-in times and forgets unplugged cars (``ev_plugs``)."""
        image = image if image is not None else self.image(now)
        sessions, plugs = evpolicy.ev_sessions(image, self.chargers, horizon, self.ev_plugs,
                                               self.config.site.timezone, self.ev_policy)
        self.ev_plugs.clear()
        self.ev_plugs.update(plugs)
        return sessions

    # ------------------------------------------------------------------ forecast job
    def forecast_job(self) -> Forecast:
        """Forecast PV, load and tariff for the optimiser horizon from the current slot
        (:func:`vpp.forecast.site.forecast_site`); alarms ``forecast:load`` and
        ``forecast:weather`` say what it had to do without."""
        now = self.now()
        fc, self.bias = forecast_site(self.config, now, store=self.store, weather=self.weather, bias=self.bias)
        if fc.load_history_error:
            self.alarms.raise_("forecast:load", f"load history unavailable: {fc.load_history_error}", now)
        if fc.load_from_history:
            self.alarms.clear("forecast:load", now, "history available")
        if fc.weather_fallback:
            self.alarms.raise_("forecast:weather", fc.weather_reason, now, "info")
        else:
            self.alarms.clear("forecast:weather", now, "weather available")
        self.forecast = fc
        return fc

    # ------------------------------------------------------------------ plan job
    def commitments(self, horizon: optimizer.Horizon, now: datetime) -> optimizer.VppCommitments | None:
        """The VPP commitments over ``horizon`` (None without a source; alarm
        ``commitments`` when the source fails: the plan then ignores them)."""
        if self.commitments_source is None:
            return None
        try:
            vpp = self.commitments_source(horizon.start, horizon)
        except Exception as e:  # noqa: BLE001 - plan without them, loudly
            self.alarms.raise_("commitments", f"VPP commitments unavailable, plan ignores them: {e}", now)
            return None
        self.alarms.clear("commitments", now, "commitments read")
        return vpp

    def build_problem(self, now: datetime, fc: Forecast, soc: Mapping[str, float],
                      image: ProcessImage | None = None) -> optimizer.Problem:
        """MPC problem from the current slot (:func:`vpp.control.problem.build_problem`) with
        this controller's floors (storm mode), commitments and connected cars."""
        horizon = problem_horizon(self.config, fc, now)
        times = slot_times(horizon)
        floors = {b.id: self.floor_at(b, times) for b in self.batteries}
        evs = self.ev_sessions(now, horizon, image)
        if image is not None and not image.grid_ok:
            # islanded: plan the outage (no grid, no cars, pessimistic PV, the load carried now)
            out = outage_inputs(self.config, times, self.shedder.on_groups(), self.reserve_in_force())
            return build_problem(self.config, fc, soc, floors, None, start=now, evs=(), outage=out)
        vpp = self.commitments(horizon, now)
        return build_problem(self.config, fc, soc, floors, vpp, start=now, evs=evs)

    def plan_job(self, image: ProcessImage | None = None) -> Plan | None:
        """Re-plan from measured SoC. On failure the previous plan is kept (the dispatch step
        falls back once it is stale) and alarm ``plan`` says why."""
        image = image if image is not None else self.image()
        now = image.at
        o = self.config.optimiser
        fc = self.forecast
        if fc is None or (now - fc.made_at) > timedelta(hours=2) or \
                fc.index[-1] < pd.Timestamp(floor_time(now, o.slot_s)) + pd.Timedelta(hours=o.horizon_h / 2):
            fc = self.forecast_job()
        soc: dict[str, float] = {}
        for b in self.batteries:
            soc[b.id] = image.soc(b.id)
            if not math.isfinite(soc[b.id]):
                why = image.reading(b.id).why or "soc missing"
                self.alarms.raise_("plan", f"no SoC for {b.id} ({why}); plan not updated", now)
                return None
        problem = self.build_problem(now, fc, soc, image)
        t0 = time.perf_counter()
        try:
            sched = self.solve(problem)
        except Exception as e:  # noqa: BLE001 - any solver failure means: keep old plan, fall back
            self.alarms.raise_("plan", f"optimiser failed: {type(e).__name__}: {e}", now)
            return None
        took = time.perf_counter() - t0
        if sched.solver is not None and not sched.solver.validated:
            self.alarms.raise_("plan", "optimiser plan failed validation: " + "; ".join(sched.warnings[-3:]), now)
            return None
        if took > 2 * o.time_limit_s:
            self.alarms.raise_("plan", f"optimiser took {took:.1f} s (limit {o.time_limit_s:.0f} s)", now)
            return None
        self.plan = Plan(sched, now, problem)
        self.plan_grid_ok = image.grid_ok
        self.alarms.clear("plan", now, "plan updated")
        self.award_alarm(sched, now)
        return self.plan

    def award_alarm(self, sched: optimizer.Schedule, now: datetime) -> None:
        """Alarm ``award`` ("award at risk") while the accepted plan reports a VPP award
        shortfall (:meth:`optimizer.Schedule.award_at_risk`: SoC, power or grid room short
        after the award was accepted; the reserve floor is never given up for it); cleared by
        the next plan that keeps every award again."""
        risk = sched.award_at_risk()
        if risk:
            self.alarms.raise_(AWARD_KEY, award_at_risk_reason(risk, sched.start, sched.slot_s,
                                                               self.config.site.timezone), now)
        else:
            self.alarms.clear(AWARD_KEY, now, "plan keeps every accepted award")

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
        dispatch = dict(self.dispatch_source(now)) if self.dispatch_source else {}
        step = decide_batteries(image, bats, self.plan, reserve=self.reserve, floors=floors,
                                overrides=self.overrides, dispatch=dispatch,
                                stale_plan_s=self.config.optimiser.stale_plan_s)
        self.alarms.apply(step.alarms, now)
        for k in step.expired_overrides:
            self.overrides.pop(k, None)
        decisions = step.decisions
        self.ev_commands = self.ev_step(now, image)
        self.pv_limits = {}
        self.island_step(image)
        if not image.grid_ok:
            self.ev_commands = island_ev_commands(self.config, self.chargers, self.ev_commands)
            self.pv_limits = island_pv_limits(self.config, image)
        if image.grid_ok and math.isfinite(image.grid_w):
            g = hold_grid_limit(self.config, image, decisions, step.windows, self.ev_commands)
            decisions, self.ev_commands, self.pv_limits = g.decisions, g.ev_commands, g.pv_limits
            self.alarms.apply(g.alarms, now)
        self.decisions.update((d.device, d) for d in decisions)
        return decisions

    def island_step(self, image: ProcessImage) -> None:
        """Live autonomy and load shedding for this step (:mod:`vpp.control.autonomy`); shed
        or restored groups are switched through ``load_switch`` and alarm ``shed`` lists
        what is off."""
        now = image.at
        reserve = self.reserve_in_force()
        socs = image.socs(self.batteries)
        crit = live_autonomy(self.config, socs, now, (), reserve)
        changes = self.shedder.step(now, image.grid_ok, crit, reserve)
        for gid, on in changes.items():
            log.warning("load group %s %s", gid, "restored" if on else f"shed: {self.shedder.shed.get(gid, '')}")
            if self.load_switch is not None:
                try:
                    self.load_switch(gid, on)
                except Exception as e:  # noqa: BLE001 - one relay failing must not stop the step
                    self.alarms.raise_(f"write:{gid}", f"load switch failed: {type(e).__name__}: {e}", now)
        if self.shedder.shed:
            self.alarms.raise_("shed", "load shed: " + ", ".join(self.shedder.shed), now, "info")
        else:
            self.alarms.clear("shed", now, "no load shed")
        self.autonomy = live_autonomy(self.config, socs, now, self.shedder.on_groups(), reserve)

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
        last plan, or a change of grid state since it (an outage begins or ends), triggers a
        re-plan first (in a worker thread, on the same process image), so the site does not
        follow a plan made for the other case until the next scheduled plan."""
        image = self.image()
        now = image.at
        new_cars = self.unplanned_cars(now, image)
        grid_changed = self.plan_grid_ok is not None and image.grid_ok != self.plan_grid_ok
        if grid_changed:
            # the grid failed (or came back): the plan in force was made for the other case
            self.plan_grid_ok = image.grid_ok  # one try per change; the schedule retries a failure
            await asyncio.to_thread(self.plan_job, image)
        elif new_cars:
            self._replan_tried.update(new_cars)
            await asyncio.to_thread(self.plan_job, image)
        decisions = self.decide(now, image)
        if self.fleet is None:
            return decisions
        lease_s = self.config.optimiser.lease_s
        for d in decisions:
            if await self._write(d.device, "setpoint", now,
                                 lambda dev, d=d: dev.set_power(d.setpoint_w, revert_s=lease_s)):
                self.leases[d.device] = Lease(d.device, d.setpoint_w, d.source, now, now + timedelta(seconds=lease_s))
        for cid, cmd in self.ev_commands.items():
            raw = image.reading(cid).raw
            in_force = raw.values.get("current_limit_a") if raw is not None else None
            if in_force is not None and abs(in_force - cmd.amps) < 0.05:
                continue  # EVSEs have no revert timer: write only changes
            await self._write(cid, "current limit", now, lambda dev, a=cmd.amps: dev.set_current_limit(a))
        for pid, w in self.pv_limits.items():
            if await self._write(pid, "PV limit", now, lambda dev, w=w: dev.set_power_limit(w, revert_s=lease_s)):
                self.leases[pid] = Lease(pid, w, "grid", now, now + timedelta(seconds=lease_s))
        return decisions

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
