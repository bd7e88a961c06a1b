"""The controller's forecast and plan jobs (:class:`PlanningJobs`, a part of
:class:`vpp.control.loop.Controller`).

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

import pandas as pd

import optimizer
from vpp.config import SiteConfig
from vpp.control import ev as evpolicy
from vpp.control.ev_needs import EvNeeds
from vpp.control.alarms import AWARD_KEY, AlarmChange, Alarms, award_at_risk_reason, clear_alarm, raise_alarm
from vpp.control.autonomy import outage_inputs
from vpp.control.image import ProcessImage
from vpp.control.problem import Plan, build_problem, problem_horizon, slot_times
from vpp.control.demand import demand_params
from vpp.forecast.pv import BiasCorrector
from vpp.forecast.site import Forecast, forecast_site
from vpp.forecast.weather import WeatherProvider
from vpp.slots import floor_time

log = logging.getLogger(__name__)


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
    grid_ok: bool = True  #: the grid state the plan was made for (False: an outage plan)


class PlanningJobs:
    """The forecast and plan jobs of a :class:`~vpp.control.loop.Controller` (which holds the
    state they read and write: config, store, weather, solve, alarms, forecast, plan, EV plugs,
    the planning lock)."""

    config: SiteConfig
    store: Any
    weather: WeatherProvider | None
    solve: Callable[[optimizer.Problem], optimizer.Schedule] | None
    alarms: Alarms
    forecast: Forecast | None
    plan: Plan | None
    bias: BiasCorrector
    ev_plugs: dict[str, evpolicy.EvPlug]
    ev_policy: evpolicy.EvPolicy
    ev_needs: EvNeeds
    planning: threading.Lock
    plan_grid_ok: bool | None
    shedder: Any

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
                                          self.config.site.timezone, self.ev_policy, self.ev_needs.all())
        if image is not None and not image.grid_ok:
            # islanded: plan the outage (no grid, no cars, pessimistic PV, the load carried now)
            out = outage_inputs(self.config, times, self.shedder.on_groups(), self.reserve_in_force(),
                                pv_p10=fc.pv_p10_w)
            problem = build_problem(self.config, fc, soc, floors, None, start=now, evs=(), outage=out)
            return problem, plugs, []
        problem = build_problem(self.config, fc, soc, floors, vpp, start=now, evs=evs)
        problem.demand = demand_params(self.config, self.store, now)  # peak shaving (高圧 demand charge)
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
        return PlanOutcome(now, Plan(sched, now, problem, fc.price_version), tuple(changes), made.forecast, made.bias,
                           made.forecast_alarms, plugs, image.grid_ok)

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
            self.plan_grid_ok = out.grid_ok
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
