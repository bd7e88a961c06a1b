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

One plan at a time: see :mod:`vpp.control.planning` (the forecast and plan jobs).
"""
from __future__ import annotations

import logging
import math
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np

import optimizer
from drivers.protocols import Snapshot
from vpp.config import Device, Reserve, SiteConfig
from vpp.control import ev as evpolicy
from vpp.control.ev_needs import EvNeeds
from vpp.control.alarms import Alarms
from vpp.control.bounds import Decision, Override, Proposal
from vpp.control.clockwatch import CLOCK_KEY, ClockWatch
from vpp.control.decide import decide_batteries, plan_proposal
from vpp.control.ev import EvCommand
from vpp.control.fleet_planner import planner_for
from vpp.control.freshness import usable
from vpp.control.gridlimit import hold_grid_limit
from vpp.control.image import ProcessImage, read_image
from vpp.control.outage import OutageDetector, OutageEvent
from vpp.control.clock import Clock, SystemClock
from vpp.control.leases import Lease
from vpp.control.planning import PlanningJobs, PlanOutcome
from vpp.control.problem import Plan
from vpp.control.autonomy import Autonomy, LoadShedder
from vpp.control.island import island_ev_commands, island_pv_limits, island_step
from vpp.control.reserve import (ReserveStateMachine, StormMode, base_floor, battery_floor, capacity_shares,
                                 capped_floor_warnings)
from vpp.forecast.pv import BiasCorrector
from vpp.forecast.site import (  # noqa: F401 - re-exported: their home is vpp.forecast.site
    Forecast, default_daily_load_wh, site_load_history, site_pv, site_pv_history,
)
from vpp.forecast.weather import WeatherProvider
from vpp.slots import floor_time

log = logging.getLogger(__name__)

__all__ = ["Clock", "SystemClock", "Fleet", "Lease", "Controller", "PlanOutcome", "Forecast", "Plan", "EvCommand",
           "floor_time", "default_daily_load_wh", "site_load_history", "site_pv", "site_pv_history"]


class Fleet(Protocol):
    """What the loop needs from the driver fleet."""

    def latest(self, device_id: str) -> Snapshot | None: ...

    def device(self, device_id: str) -> Any: ...  # has ``async set_power(watts, revert_s)``


@dataclass
class Controller(PlanningJobs):
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
    ev_needs: EvNeeds = field(default_factory=EvNeeds)  #: drivers' / stations' needs per charger
    ev_commands: dict[str, EvCommand] = field(default_factory=dict)
    pv_limits: dict[str, float] = field(default_factory=dict)  #: PV curtailment of this step [W]
    #: ``(group id, on)`` switches a load group's relay (None: shed state is reported only)
    load_switch: Callable[[str, bool], Any] | None = None
    shedder: LoadShedder | None = None
    autonomy: Autonomy | None = None  #: live autonomy of the last step
    plan_grid_ok: bool | None = None  #: grid state the plan in force was made for
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
        image = image if image is not None else self.image(now, detect=False)
        sessions, plugs = evpolicy.ev_sessions(image, self.chargers, horizon, self.ev_plugs,
                                               self.config.site.timezone, self.ev_policy, self.ev_needs.all())
        self.ev_plugs.clear()
        self.ev_plugs.update(plugs)
        return sessions

    # ------------------------------------------------------------------ forecast job
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
        self.island_step(image)
        suspect = self.outage is None and self.outage_detector is not None and self.outage_detector.suspect
        if not image.grid_ok or suspect:  # the reserve never feeds cars, not even while confirming
            self.ev_commands = island_ev_commands(self.config, self.chargers, self.ev_commands)
        if not image.grid_ok:
            self.pv_limits = island_pv_limits(self.config, image)
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
    def island_step(self, image: ProcessImage) -> None:
        """Live autonomy and load shedding for this step (:func:`vpp.control.island.island_step`)."""
        self.autonomy = island_step(self.config, image, self.batteries, self.reserve_in_force(), self.shedder,
                                    self.load_switch, self.alarms)

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
        for cid in left:
            self.ev_needs.car_left(cid)
        return new

    async def dispatch_job(self) -> list[Decision]:
        """Decide and write every battery setpoint as a lease (``revert_s`` = ``lease_s``),
        every charger's current limit and any PV curtailment. A car that arrived since the
        last plan, or a change of grid state since it (an outage begins or ends), triggers a
        re-plan first (in a worker thread, on the same process image), so the site does not
        follow a plan made for the other case until the next scheduled plan."""
        image = self.image()
        now = image.at
        stepped = self.clock_watch is not None and self.clock_watch.exceeded(self.watch_clock(now))
        new_cars = self.unplanned_cars(now, image)
        grid_changed = self.plan_grid_ok is not None and image.grid_ok != self.plan_grid_ok
        if grid_changed:
            # the grid failed (or came back): the plan in force was made for the other case
            self.plan_grid_ok = image.grid_ok  # one try per change; the schedule retries a failure
        elif new_cars:
            self._replan_tried.update(new_cars)
        if grid_changed or new_cars or stepped:  # (a clock step leaves the plan's slots wrong)
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
