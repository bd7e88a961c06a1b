"""The control loop's job functions: forecast, plan (MPC), dispatch.

Polling belongs to the driver fleet (one poller per connection) and storage to the telemetry
pipeline; the jobs here only read the fleet's latest snapshots, the store's history and the
clock, and write battery setpoints as *leases*: every write carries ``revert_s`` so a device
whose setpoint is not renewed reverts to idle on its own.

Recipe per dispatch step and battery::

    snapshot fresh? ──no──► idle (alarm inputs:<id>)
        │ yes
    reserve state machine (floor, storm, outage) ─► window
    override ─► dispatch ─► plan (fresh, valid) ─► fallback rule (alarm says why)
        └─► compose() ─► set_power(setpoint, revert_s=lease_s)

EV chargers (:mod:`vpp.control.ev`): a connected car is an optimiser session; each step the
plan's EV power becomes the charger's current limit (full current without a plan for it).
Then the grid limit (:mod:`vpp.control.gridlimit`): if the meter reading plus this step's
changes would exceed the connection limit, EV charging is cut first, then the batteries get
a ``grid`` window right under the reserve (then PV is curtailed, for export) and compose
again.

:class:`Controller` holds the parameters and state; the job bodies are plain methods that
take no arguments and read the time from the injected clock, so the same code runs under
APScheduler (:mod:`vpp.control.scheduler`) or a simulated-clock loop.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import numpy as np
import pandas as pd

import optimizer
from drivers.protocols import Quality, Snapshot
from vpp.config import Device, Reserve, SiteConfig
from vpp.control import ev as evpolicy
from vpp.control.alarms import AWARD_KEY, Alarms, award_at_risk_reason
from vpp.control.bounds import Decision, Override, Proposal, compose
from vpp.control.gridlimit import battery_shift, predicted_grid_w, shed_ev
from vpp.control.fallback import fallback_proposal, self_consumption_w, split_by_rating
from vpp.control.fleet_planner import planner_for
from vpp.control.reserve import ReserveStateMachine, StormMode, base_floor, floor_trajectory, grid_outage
from vpp.forecast.load import forecast_load
from vpp.forecast.pv import BiasCorrector, forecast_pv
from vpp.forecast.tariff import expand_tariff
from vpp.forecast.weather import WeatherProvider, get_weather
from vpp.slots import floor_time

log = logging.getLogger(__name__)


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
class Forecast:
    """Per-slot forecasts for the horizon (index = slot starts, UTC)."""

    index: pd.DatetimeIndex
    pv_w: pd.Series
    load_w: pd.Series
    tariff: pd.DataFrame
    made_at: datetime
    weather_fallback: bool = False
    weather_reason: str = ""
    load_from_history: bool = False


@dataclass
class Plan:
    schedule: optimizer.Schedule
    made_at: datetime
    problem: optimizer.Problem


@dataclass(frozen=True)
class EvCommand:
    """This step's current limit for one charger: ``amps`` [A] (0 pauses), the power it
    allows ``power_w`` [W], where it came from (``plan``, ``default``, ``grid``) and why."""

    charger: str
    amps: float
    power_w: float
    source: str
    reason: str = ""


@dataclass
class Lease:
    """A setpoint written to a device; it reverts to idle at ``expires_at`` unless renewed."""

    device: str
    setpoint_w: float
    source: str
    written_at: datetime
    expires_at: datetime


def default_daily_load_wh(config: SiteConfig) -> float:
    """Daily load [Wh] assumed without history: 14 kWh per home, or a facility using 15 % of
    its import limit on average."""
    homes = {d.home for d in config.devices if d.home}
    if homes:
        return 14_000.0 * len(homes)
    return 0.15 * config.grid.import_limit_w * 24.0


def site_load_history(store: Any, config: SiteConfig, start: datetime, end: datetime,
                      every: str = "15m") -> pd.Series | None:
    """Site consumption [W] per bucket from stored telemetry:
    ``grid meter + pv + battery − ev`` (EV charging is planned separately). Buckets where any
    of these devices has no data are NaN. ``None`` without a grid meter."""
    meter = config.grid_meter()
    if meter is None:
        return None
    signs: list[tuple[Device, float]] = [(meter, 1.0)]
    signs += [(d, 1.0) for d in config.devices_of("pv")]
    signs += [(d, 1.0) for d in config.devices_of("battery")]
    signs += [(d, -1.0) for d in config.devices_of("ev_charger")]
    cols = {}
    for d, s in signs:
        df = store.query(device=d.id, fields=["power_w"], start=start, end=end, every=every)
        cols[d.id] = s * df["power_w"]
    frame = pd.concat(cols, axis=1, sort=True)  # a union of the devices' time indexes, in time order
    if frame.empty:
        return None
    return frame.sum(axis=1, min_count=frame.shape[1])


def site_pv(config: SiteConfig, by_array: pd.DataFrame) -> pd.Series:
    """Site PV [W]: arrays summed per inverter and clipped at its AC rating (``power_w``);
    arrays without an inverter are added unclipped."""
    total = pd.Series(0.0, index=by_array.index)
    groups: dict[str | None, list[str]] = {}
    for a in config.pv_arrays:
        groups.setdefault(a.inverter, []).append(a.id)
    for inv, ids in groups.items():
        p = by_array[ids].sum(axis=1)
        rating = config.device(inv).ratings.power_w if inv is not None else None
        total += p.clip(upper=rating) if rating else p
    return total


def site_pv_history(store: Any, config: SiteConfig, start: datetime, end: datetime,
                    every: str = "15m") -> pd.Series | None:
    """Measured site PV [W] per bucket (sum over inverters; NaN where one has no data)."""
    invs = config.devices_of("pv")
    if not invs:
        return None
    cols = {d.id: store.query(device=d.id, fields=["power_w"], start=start, end=end, every=every)["power_w"]
            for d in invs}
    frame = pd.concat(cols, axis=1, sort=True)
    return None if frame.empty else frame.sum(axis=1, min_count=frame.shape[1])


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
    _replan_tried: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.solve is None:
            self.solve = planner_for(self.config)
        r = self.config.reserve
        self.storm.lead = timedelta(hours=r.storm_lead_h)
        self.storm.target = r.storm_target_pct / 100.0
        for b in self.batteries:
            rt = b.ratings
            self.reserve.setdefault(b.id, ReserveStateMachine(
                capacity_wh=rt.capacity_wh, max_charge_w=rt.max_charge_w, max_discharge_w=rt.max_discharge_w,
                hysteresis=r.hysteresis_pct / 100.0, step_s=self.config.optimiser.dispatch_interval_s,
                eta_discharge=rt.discharge_efficiency, eta_charge=rt.charge_efficiency))

    # ------------------------------------------------------------------ helpers
    @property
    def batteries(self) -> list[Device]:
        return self.config.devices_of("battery")

    @property
    def chargers(self) -> list[Device]:
        return self.config.devices_of("ev_charger")

    def ev_sessions(self, now: datetime, horizon: optimizer.Horizon) -> list[optimizer.EvSession]:
        """One session per charger with a car connected (fresh reading), from the policy of
        :mod:`vpp.control.ev`; remembers plug-in times and forgets unplugged cars."""
        out = []
        for c in self.chargers:
            snap, _ = self.snapshot(c.id, now)
            if snap is None:
                continue  # unknown: keep what we knew, plan nothing for it
            if not evpolicy.connected(snap.values):
                self.ev_plugs.pop(c.id, None)
                continue
            plug = self.ev_plugs.get(c.id)
            if plug is None:
                plug = evpolicy.EvPlug(c.id, now, evpolicy.departure_for(now, self.config.site.timezone,
                                                                        self.ev_policy))
                self.ev_plugs[c.id] = plug
            if plug.departure <= horizon.start:
                continue  # overstayed the assumed departure: the default limit applies
            delivered = snap.values.get("session_energy_wh", 0.0)
            out.append(evpolicy.session(plug, horizon, delivered if math.isfinite(delivered) else 0.0, c,
                                        self.ev_policy))
        return out

    def now(self) -> datetime:
        return self.clock.now()

    def base_floor(self, battery: Device) -> float:
        reserve = self.reserve_source() if self.reserve_source is not None else self.config.reserve
        return base_floor(reserve, battery.ratings.capacity_wh, battery.ratings.soc_max)

    def floor_at(self, battery: Device, times: list[datetime]) -> np.ndarray:
        """Reserve floor [fraction] for ``battery`` at ``times`` (storm mode included)."""
        return floor_trajectory(self.base_floor(battery), times, self.storm)

    def snapshot(self, device_id: str, now: datetime) -> tuple[Snapshot | None, str]:
        """Latest usable snapshot and, if unusable, why."""
        snap = self.fleet.latest(device_id) if self.fleet is not None else None
        if snap is None and self.store is not None and self.fleet is None:
            snap = self.store.latest(device_id).get(device_id)
        if snap is None:
            return None, "no reading"
        if snap.quality is not Quality.GOOD:
            return None, f"quality {snap.quality.value}: {snap.reason}"
        age = (now - snap.ts).total_seconds()
        if age > self.stale_input_s:
            return None, f"reading {age:.0f} s old"
        return snap, ""

    def grid_meter(self) -> Device | None:
        return self.config.grid_meter()

    # ------------------------------------------------------------------ forecast job
    def forecast_job(self) -> Forecast:
        """Forecast PV, load and tariff for the optimiser horizon from the current slot."""
        now = self.now()
        o = self.config.optimiser
        start = floor_time(now, o.slot_s)
        n = int(round(o.horizon_h * 3600 / o.slot_s))
        index = pd.date_range(start, periods=n, freq=pd.Timedelta(seconds=o.slot_s))
        w = get_weather(self.weather, self.config.site, index[0], index[-1] + index.freq, index.freq)
        pv = site_pv(self.config, forecast_pv(self.config.pv_arrays, self.config.site, w.frame))
        if self.store is not None and self.config.pv_arrays:
            try:
                self.bias = self.fit_pv_bias(start)
            except Exception as e:  # noqa: BLE001 - keep the previous correction
                log.warning("PV bias correction not refitted: %s", e)
            pv = self.bias.apply(pv)
        history = None
        if self.store is not None:
            try:
                history = site_load_history(self.store, self.config, start - timedelta(days=28), start)
            except Exception as e:  # noqa: BLE001 - a store fault must not stop planning
                self.alarms.raise_("forecast:load", f"load history unavailable: {e}", now)
        load = forecast_load(history, index, self.config.site.timezone,
                             default_daily_wh=default_daily_load_wh(self.config))
        if history is not None and history.notna().any():
            self.alarms.clear("forecast:load", now, "history available")
        tariff = expand_tariff(self.config.tariff, index, self.config.site.timezone)
        if w.fallback:
            self.alarms.raise_("forecast:weather", w.reason, now, "info")
        else:
            self.alarms.clear("forecast:weather", now, "weather available")
        self.forecast = Forecast(index, pv, load, tariff, now, w.fallback, w.reason,
                                 history is not None and bool(history.notna().any()))
        return self.forecast

    def fit_pv_bias(self, start: datetime, days: int = 7) -> BiasCorrector:
        """Fit the PV bias correction from the last ``days`` of measured PV vs the model run
        on the same weather source. Without past weather (clear-sky fallback) the ratio would
        mix model bias with cloudiness, so the correction stays at its previous value."""
        o = self.config.optimiser
        past0 = start - timedelta(days=days)
        w = get_weather(self.weather, self.config.site, past0, start, pd.Timedelta(seconds=o.slot_s))
        if w.fallback:
            return self.bias
        model = site_pv(self.config, forecast_pv(self.config.pv_arrays, self.config.site, w.frame))
        measured = site_pv_history(self.store, self.config, past0, start, f"{o.slot_s}s")
        if measured is None:
            return self.bias
        return BiasCorrector().fit(measured.reindex(model.index), model)

    # ------------------------------------------------------------------ plan job
    def build_problem(self, now: datetime, fc: Forecast, soc: Mapping[str, float]) -> optimizer.Problem:
        """MPC problem from the current slot: forecasts cut to the horizon, measured SoC."""
        o = self.config.optimiser
        start = floor_time(now, o.slot_s)
        sel = fc.index >= pd.Timestamp(start)
        index = fc.index[sel]
        times = list(index.to_pydatetime())
        bats = []
        for b in self.batteries:
            r = b.ratings
            bats.append(optimizer.BatteryParams(
                id=b.id, capacity_wh=r.capacity_wh, max_charge_w=r.max_charge_w,
                max_discharge_w=r.max_discharge_w, eta_charge=r.charge_efficiency,
                eta_discharge=r.discharge_efficiency, soc_min=r.soc_min, soc_max=r.soc_max,
                soc0=float(np.clip(soc[b.id], 0.0, 1.0)), degradation_cost_per_kwh=r.degradation_cost_per_kwh,
                floor=self.floor_at(b, times)))
        t = fc.tariff[sel]
        horizon = optimizer.Horizon(start, o.slot_s, len(index))
        # A car must get its energy whenever that is physically possible, so a kWh left
        # undelivered costs more than the dearest kWh bought; serving the site's load
        # still ranks above charging cars.
        co2 = t["co2_kg_per_kwh"].to_numpy() * self.config.tariff.co2_price_per_kg
        dearest = float(np.nanmax(t["buy_per_kwh"].to_numpy() + co2)) if len(t) else 0.0
        ev_penalty = 2.0 * max(dearest, 0.0) + 1.0
        unserved_penalty = max(optimizer.SolveOptions.unserved_penalty_per_kwh, 5.0 * ev_penalty)
        vpp = None
        if self.commitments_source is not None:
            try:
                vpp = self.commitments_source(start, horizon)
                self.alarms.clear("commitments", now, "commitments read")
            except Exception as e:  # noqa: BLE001 - plan without them, loudly
                self.alarms.raise_("commitments", f"VPP commitments unavailable, plan ignores them: {e}", now)
        return optimizer.Problem(
            horizon=horizon,
            pv_w=fc.pv_w[sel].to_numpy(), load_w=fc.load_w[sel].to_numpy(),
            batteries=tuple(bats),
            evs=tuple(self.ev_sessions(now, horizon)),
            vpp=vpp,
            grid=optimizer.GridParams(self.config.grid.import_limit_w, self.config.grid.export_limit_w),
            prices=optimizer.Prices(buy=t["buy_per_kwh"].to_numpy(), sell=t["sell_per_kwh"].to_numpy(),
                                    co2_kg_per_kwh=t["co2_kg_per_kwh"].to_numpy(),
                                    co2_price_per_kg=self.config.tariff.co2_price_per_kg),
            options=optimizer.SolveOptions(
                solver=o.solver, time_limit_s=o.time_limit_s, mip_gap=o.mip_gap,
                recovery_penalty_per_kwh=self.config.reserve.recovery_penalty_per_kwh,
                ev_unmet_penalty_per_kwh=ev_penalty, unserved_penalty_per_kwh=unserved_penalty),
        )

    def plan_job(self) -> Plan | None:
        """Re-plan from measured SoC. On failure the previous plan is kept (the dispatch step
        falls back once it is stale) and alarm ``plan`` says why."""
        now = self.now()
        o = self.config.optimiser
        fc = self.forecast
        if fc is None or (now - fc.made_at) > timedelta(hours=2) or \
                fc.index[-1] < pd.Timestamp(floor_time(now, o.slot_s)) + pd.Timedelta(hours=o.horizon_h / 2):
            fc = self.forecast_job()
        soc: dict[str, float] = {}
        for b in self.batteries:
            snap, why = self.snapshot(b.id, now)
            if snap is None or not math.isfinite(snap.values.get("soc", math.nan)):
                self.alarms.raise_("plan", f"no SoC for {b.id} ({why or 'soc missing'}); plan not updated", now)
                return None
            soc[b.id] = snap.values["soc"]
        problem = self.build_problem(now, fc, soc)
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
        p = self.plan
        if p is None:
            return None, "no plan"
        age = (now - p.made_at).total_seconds()
        if age > self.config.optimiser.stale_plan_s:
            return None, f"plan stale (made {p.made_at.isoformat(timespec='seconds')}, limit {self.config.optimiser.stale_plan_s:.0f} s)"
        s = p.schedule
        k = int((now - s.start).total_seconds() // s.slot_s)
        if not 0 <= k < s.n:
            return None, "now is outside the plan horizon"
        if device_id not in s.battery_w:
            return None, f"plan has no setpoint for {device_id}"
        return Proposal("plan", float(s.battery_w[device_id][k]), reason=f"slot {k}"), ""

    def decide(self, now: datetime | None = None) -> list[Decision]:
        """Compose this step's decision per battery (no I/O besides reading snapshots)."""
        now = now or self.now()
        meter = self.grid_meter()
        meter_snap, meter_why = self.snapshot(meter.id, now) if meter is not None else (None, "no grid meter")
        if self.outage is not None:
            grid_ok = not self.outage
        else:
            v = meter_snap.values if meter_snap is not None else {}
            grid_ok = not grid_outage(v.get("voltage_v"), v.get("frequency_hz"))
        bats = self.batteries
        snaps = {b.id: self.snapshot(b.id, now) for b in bats}
        # Site-wide self-consumption target, shared by rating (used in outage and fallback).
        site_target = None
        if meter_snap is not None and all(s is not None for s, _ in snaps.values()):
            bat_sum = sum(s.values.get("power_w", 0.0) for s, _ in snaps.values())
            site_target = self_consumption_w(meter_snap.values.get("power_w", 0.0), bat_sum)
        composed: dict[str, tuple[float, float, dict[str, Proposal | None]]] = {}
        shares = dict(zip([b.id for b in bats], split_by_rating(site_target or 0.0, [
            (b.ratings.max_charge_w, b.ratings.max_discharge_w) for b in bats]) if bats else []))
        dispatch = dict(self.dispatch_source(now)) if self.dispatch_source else {}

        out = []
        for b in bats:
            r = b.ratings
            snap, why = snaps[b.id]
            if snap is None or not math.isfinite(snap.values.get("soc", math.nan)):
                self.alarms.raise_(f"inputs:{b.id}", f"{b.id}: {why or 'no SoC'}; idling", now)
                d = Decision(b.id, 0.0, "inputs-stale", (why or "no SoC",), 0.0, 0.0)
                out.append(d)
                self.decisions[b.id] = d
                continue
            self.alarms.clear(f"inputs:{b.id}", now, "fresh reading")
            floor = float(self.floor_at(b, [now])[0])
            lim = self.reserve[b.id].step(now, snap.values["soc"], floor, grid_ok)
            reserve = Proposal("reserve", None, lim.min_w, lim.max_w, f"{lim.state.value}: {lim.reason}".rstrip(": "))
            if not grid_ok:
                # islanded: keep serving the site (the inverter's island mode decides anyway)
                reserve = Proposal("reserve", shares.get(b.id, 0.0), lim.min_w, lim.max_w, "outage: serve the site")
            layers: dict[str, Proposal | None] = {"reserve": reserve}
            ov = self.overrides.get(b.id)
            if ov is not None:
                layers["override"] = ov.proposal(now)
                if not ov.active(now):
                    del self.overrides[b.id]
            layers["dispatch"] = dispatch.get(b.id)
            plan, plan_why = self.plan_proposal(b.id, now)
            layers["plan"] = plan
            if plan is None:
                if site_target is not None:
                    layers["fallback"] = fallback_proposal(shares[b.id], plan_why)
                else:
                    plan_why += f"; no fresh grid reading ({meter_why}): idling"
                self.alarms.raise_("fallback", f"fallback rule engaged: {plan_why}", now)
            else:
                self.alarms.clear("fallback", now, "plan in use")
            # the device refuses to discharge at soc_min or charge at soc_max: say so here
            soc = snap.values["soc"]
            lo = 0.0 if soc >= r.soc_max else -r.max_charge_w
            hi = 0.0 if soc <= r.soc_min else r.max_discharge_w
            d = compose(b.id, lo, hi, layers)
            out.append(d)
            self.decisions[b.id] = d
            composed[b.id] = (lo, hi, layers)
        self.ev_commands = self.ev_step(now)
        self.pv_limits = {}
        if grid_ok and meter_snap is not None and math.isfinite(meter_snap.values.get("power_w", math.nan)):
            out = self.grid_limit(now, meter_snap.values["power_w"], snaps, out, composed)
        return out

    def ev_step(self, now: datetime) -> dict[str, EvCommand]:
        """Current limit per charger with a fresh reading: the plan's EV power for this slot,
        or the full current when the plan has none for it (no plan, stale, car arrived after
        planning: charge now; the grid limit still applies)."""
        out: dict[str, EvCommand] = {}
        plan, why = self.plan, ""
        k = -1
        if plan is None:
            why = "no plan"
        elif (now - plan.made_at).total_seconds() > self.config.optimiser.stale_plan_s:
            why = "plan stale"
        else:
            k = int((now - plan.schedule.start).total_seconds() // plan.schedule.slot_s)
            if not 0 <= k < plan.schedule.n:
                why = "now is outside the plan horizon"
        for c in self.chargers:
            snap, _ = self.snapshot(c.id, now)
            if snap is None:
                continue
            if not why and c.id in plan.schedule.ev_w and c.id in self.ev_plugs:
                w = float(plan.schedule.ev_w[c.id][k])
                a = evpolicy.amps_for(w, c)
                out[c.id] = EvCommand(c.id, a, evpolicy.power_for(a, c), "plan", f"slot {k}: {w:.0f} W")
            else:
                _, hi = evpolicy.power_window_w(c)
                a = evpolicy.amps_for(hi, c)
                out[c.id] = EvCommand(c.id, a, evpolicy.power_for(a, c), "default",
                                      why or "no planned session: full current")
        return out

    def _ev_expected_w(self, cmd: EvCommand, values: Mapping[str, float]) -> tuple[float, float]:
        """(now, after the command) EV charging power [W]: a car drawing clearly less than the
        limit in force is limited by itself (or full), so it will not draw more later."""
        p = values.get("power_w", 0.0)
        p = p if math.isfinite(p) else 0.0
        if not evpolicy.connected(values):
            return p, 0.0
        limit_now = values.get("current_limit_a", math.nan)
        ch = self.config.device(cmd.charger)
        if math.isfinite(limit_now) and limit_now > 0 and p < 0.9 * evpolicy.power_for(limit_now, ch):
            return p, min(cmd.power_w, p)
        return p, cmd.power_w

    def grid_limit(self, now: datetime, grid_w: float, snaps: Mapping[str, tuple[Snapshot | None, str]],
                   decisions: list[Decision], composed: Mapping[str, tuple[float, float, dict]]) -> list[Decision]:
        """Keep the predicted grid exchange within the connection limits (see
        :mod:`vpp.control.gridlimit`): EV first, then a ``grid`` window for the batteries
        (never against the reserve), then PV curtailment for export. Alarm ``grid`` if the
        limit cannot be held."""
        g = self.config.grid
        ev_now, ev_next, ev_min = {}, {}, {}
        for cid, cmd in self.ev_commands.items():
            snap, _ = self.snapshot(cid, now)
            ev_now[cid], ev_next[cid] = self._ev_expected_w(cmd, snap.values)
            ev_min[cid] = evpolicy.power_window_w(self.config.device(cid))[0]
        bat_now = {b: s.values.get("power_w", 0.0) for b, (s, _) in snaps.items() if s is not None}
        bat_next = {d.device: d.setpoint_w for d in decisions}
        pred = predicted_grid_w(grid_w, ev_now, ev_next, bat_now, bat_next)
        if pred > g.import_limit_w:
            excess, direction = pred - g.import_limit_w, "import"
        elif pred < -g.export_limit_w:
            excess, direction = -g.export_limit_w - pred, "export"
        else:
            self.alarms.clear("grid", now, "within the grid limits")
            return decisions
        left = excess
        if direction == "import":
            shed, left = shed_ev(excess, ev_next, ev_min)
            for cid, w in shed.items():
                if w < ev_next[cid] - 1e-6:
                    ch = self.config.device(cid)
                    a = evpolicy.amps_for(w, ch) if w > 0 else 0.0
                    self.ev_commands[cid] = EvCommand(cid, a, evpolicy.power_for(a, ch), "grid",
                                                      f"import {pred:.0f} W over limit {g.import_limit_w:.0f} W")
        sps = {d.device: d.setpoint_w for d in decisions}
        room = {}
        for d in decisions:
            if d.device not in composed:
                continue  # idled for stale inputs: not ours to move
            lo, hi, layers = composed[d.device]
            res = layers["reserve"]
            wlo, whi = max(lo, res.min_w), min(hi, res.max_w)
            room[d.device] = max(whi - d.setpoint_w, 0.0) if direction == "import" else max(d.setpoint_w - wlo, 0.0)
        if left > 0 and room:
            shift, left = battery_shift(left, {k: sps[k] for k in room}, room)
            out = []
            for d in decisions:
                dw = shift.get(d.device, 0.0)
                if dw <= 0:
                    out.append(d)
                    continue
                lo, hi, layers = composed[d.device]
                why = f"{direction} {pred:.0f} W beyond the grid limit"
                layers = {**layers, "grid": Proposal("grid", None, min_w=d.setpoint_w + dw, reason=why)
                          if direction == "import" else Proposal("grid", None, max_w=d.setpoint_w - dw, reason=why)}
                nd = compose(d.device, lo, hi, layers)
                self.decisions[d.device] = nd
                out.append(nd)
            decisions = out
        if left > 0 and direction == "export":
            pvs = {}
            for p in self.config.devices_of("pv"):
                snap, _ = self.snapshot(p.id, now)
                if snap is not None and math.isfinite(snap.values.get("power_w", math.nan)):
                    pvs[p.id] = max(snap.values["power_w"], 0.0)
            cut, left = battery_shift(left, pvs, pvs)
            self.pv_limits = {k: max(pvs[k] - cut[k], 0.0) for k in pvs if cut[k] > 0}
        if left > 1.0:
            self.alarms.raise_("grid", f"{direction} limit cannot be held: {left:.0f} W left after "
                               "EV, battery and PV measures", now)
        else:
            self.alarms.clear("grid", now, f"{direction} held within the limit")
        return decisions

    def unplanned_cars(self, now: datetime) -> list[str]:
        """Chargers with a car connected that the current plan has no session for and that
        have not triggered a re-plan yet (cleared when the car leaves)."""
        if self.plan is None:
            return []
        planned = {s.charger_id for s in self.plan.problem.evs}
        out = []
        for c in self.chargers:
            snap, _ = self.snapshot(c.id, now)
            if snap is None:
                continue
            if not evpolicy.connected(snap.values):
                self._replan_tried.discard(c.id)
            elif c.id not in planned and c.id not in self._replan_tried:
                out.append(c.id)
        return out

    async def dispatch_job(self) -> list[Decision]:
        """Decide and write every battery setpoint as a lease (``revert_s`` = ``lease_s``),
        every charger's current limit and any PV curtailment. A car that arrived since the
        last plan triggers a re-plan first (in a worker thread), so it does not charge at
        full current until the next scheduled plan."""
        now = self.now()
        new_cars = self.unplanned_cars(now)
        if new_cars:
            self._replan_tried.update(new_cars)
            await asyncio.to_thread(self.plan_job)
        decisions = self.decide(now)
        if self.fleet is None:
            return decisions
        lease_s = self.config.optimiser.lease_s
        for d in decisions:
            try:
                await self.fleet.device(d.device).set_power(d.setpoint_w, revert_s=lease_s)
            except Exception as e:  # noqa: BLE001 - one device failing must not stop the others
                self.alarms.raise_(f"write:{d.device}", f"setpoint write failed: {type(e).__name__}: {e}", now)
                continue
            self.alarms.clear(f"write:{d.device}", now, "write ok")
            self.leases[d.device] = Lease(d.device, d.setpoint_w, d.source, now, now + timedelta(seconds=lease_s))
        for cid, cmd in self.ev_commands.items():
            snap = self.fleet.latest(cid)
            in_force = snap.values.get("current_limit_a") if snap is not None else None
            if in_force is not None and abs(in_force - cmd.amps) < 0.05:
                continue  # EVSEs have no revert timer: write only changes
            try:
                await self.fleet.device(cid).set_current_limit(cmd.amps)
            except Exception as e:  # noqa: BLE001
                self.alarms.raise_(f"write:{cid}", f"current limit write failed: {type(e).__name__}: {e}", now)
                continue
            self.alarms.clear(f"write:{cid}", now, "write ok")
        for pid, w in self.pv_limits.items():
            try:
                await self.fleet.device(pid).set_power_limit(w, revert_s=lease_s)
            except Exception as e:  # noqa: BLE001
                self.alarms.raise_(f"write:{pid}", f"PV limit write failed: {type(e).__name__}: {e}", now)
                continue
            self.alarms.clear(f"write:{pid}", now, "write ok")
            self.leases[pid] = Lease(pid, w, "grid", now, now + timedelta(seconds=lease_s))
        return decisions
