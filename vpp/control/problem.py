"""The optimiser problem of one site, built from plain inputs; and the plan made from it.

:func:`build_problem` is pure: no clock, no alarms, no I/O. The caller reads the SoC, the
reserve floors over the horizon (:func:`vpp.control.reserve.battery_floors`), the VPP
commitments and the EV sessions, and passes them in. The control loop's plan job, ``vpp
plan`` and the day-ahead bids all build their problem here.

:class:`Plan` is a solved problem; :func:`plan_slot` says which of its slots is in force
(the plan must be fresh: :func:`vpp.control.freshness.plan_fresh`).

This is the one place where the config's battery vocabulary (``charge_efficiency``,
``discharge_efficiency`` [-]) becomes the optimiser's (``eta_charge``, ``eta_discharge``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

import optimizer
from vpp.config import Device, SiteConfig
from vpp.control.freshness import plan_fresh
from vpp.control.scenario_inputs import problem_scenarios
from vpp.forecast.site import Forecast
from vpp.slots import floor_time


@dataclass
class Plan:
    """A solved ``problem``: its ``schedule``, made at ``made_at`` (UTC)."""

    schedule: optimizer.Schedule
    made_at: datetime
    problem: optimizer.Problem
    #: the price data the plan was made with (:attr:`vpp.forecast.site.Forecast.price_version`)
    price_version: str = ""


def plan_slot(plan: Plan | None, now: datetime, stale_plan_s: float) -> tuple[int, str]:
    """Slot index of ``now`` in a fresh ``plan`` (:func:`vpp.control.freshness.plan_fresh`),
    or ``(-1, why not)``."""
    ok, why = plan_fresh(plan.made_at if plan is not None else None, now, stale_plan_s)
    if not ok:
        return -1, why
    s = plan.schedule
    k = int((now - s.start).total_seconds() // s.slot_s)
    if not 0 <= k < s.n:
        return -1, "now is outside the plan horizon"
    return k, ""


def problem_horizon(config: SiteConfig, forecast: Forecast, start: datetime | None = None) -> optimizer.Horizon:
    """Horizon of the problem: the forecast's slots from the slot containing ``start``
    (None: the forecast's first slot), ``optimiser.slot_s`` [s] long."""
    slot_s = config.optimiser.slot_s
    t0 = floor_time(start, slot_s) if start is not None else forecast.index[0].to_pydatetime()
    n = int((forecast.index >= pd.Timestamp(t0)).sum())
    return optimizer.Horizon(t0, slot_s, n)


def slot_times(horizon: optimizer.Horizon) -> list[datetime]:
    """Start (UTC) of every slot of ``horizon``."""
    return [horizon.start + timedelta(seconds=horizon.slot_s * i) for i in range(horizon.n)]


def battery_params(battery: Device, soc: float, floor: np.ndarray | float) -> optimizer.BatteryParams:
    """Optimiser parameters of ``battery`` at SoC ``soc`` [fraction, clipped to 0…1] with the
    reserve ``floor`` [fraction] per slot (or one value)."""
    r = battery.ratings
    return optimizer.BatteryParams(
        id=battery.id, capacity_wh=r.capacity_wh, max_charge_w=r.max_charge_w,
        max_discharge_w=r.max_discharge_w, eta_charge=r.charge_efficiency,
        eta_discharge=r.discharge_efficiency, soc_min=r.soc_min, soc_max=r.soc_max,
        soc0=float(np.clip(soc, 0.0, 1.0)), degradation_cost_per_kwh=r.degradation_cost_per_kwh,
        floor=floor)


@dataclass(frozen=True)
class OutageInputs:
    """What an outage plan uses instead of the forecast, per horizon slot: ``outage`` (planned
    islanded), ``pv_w`` and ``load_w`` [W]."""

    outage: np.ndarray
    pv_w: np.ndarray
    load_w: np.ndarray


def build_problem(config: SiteConfig, forecast: Forecast, soc: Mapping[str, float],
                  floors: Mapping[str, np.ndarray], commitments: optimizer.VppCommitments | None = None, *,
                  start: datetime | None = None, evs: Sequence[optimizer.EvSession] = (),
                  outage: OutageInputs | None = None, errors: pd.DataFrame | None = None) -> optimizer.Problem:
    """MPC problem of the site from the slot containing ``start``: forecasts cut to the
    horizon (:func:`problem_horizon`), measured SoC, reserve floors, commitments, EV sessions.

    Parameters
    ----------
    forecast : Forecast
        PV, load [W] and tariff per slot; it must cover ``start``.
    soc : mapping
        Starting SoC [fraction] of every battery of the config.
    floors : mapping
        Reserve floor [fraction] of every battery per horizon slot (length ``horizon.n``),
        storm ramp included (:func:`vpp.control.reserve.battery_floors`).
    commitments : VppCommitments or None
        Awarded VPP capacity per horizon slot the plan must keep deliverable.
    start : datetime or None
        Planning time (UTC); None = the forecast's first slot.
    evs : sequence of EvSession
        Connected cars (:func:`vpp.control.ev.session`), slots relative to the horizon.
    outage : OutageInputs or None
        Plan islanded: slots marked ``outage`` (no grid, floor released), with this PV and
        load [W] per slot instead of the forecast's (:func:`vpp.control.autonomy.outage_inputs`).
    errors : DataFrame or None
        Past forecast errors [W] (``pv_error_w``, ``load_error_w``) for the scenarios'
        quantiles when the forecast has none (:mod:`vpp.control.scenario_inputs`).

    Notes
    -----
    With ``optimiser.scenarios`` > 1 the problem carries that many joint PV / load scenarios
    (:func:`vpp.control.scenario_inputs.problem_scenarios`; not for an outage plan, whose
    inputs are already pessimistic), and the solver plans over all of them.

    A car must get its energy whenever that is physically possible, so a kWh left
    undelivered costs ``2 ×`` the dearest kWh bought (energy + CO2) ``+ 1``; serving the
    site's load still ranks above charging cars (unserved load costs at least 5 × that).
    """
    o = config.optimiser
    horizon = problem_horizon(config, forecast, start)
    sel = forecast.index >= pd.Timestamp(horizon.start)
    bats = tuple(battery_params(b, soc[b.id], floors[b.id]) for b in config.devices_of("battery"))
    t = forecast.tariff[sel]
    co2 = t["co2_kg_per_kwh"].to_numpy() * config.tariff.co2_price_per_kg
    dearest = float(np.nanmax(t["buy_per_kwh"].to_numpy() + co2)) if len(t) else 0.0
    ev_penalty = 2.0 * max(dearest, 0.0) + 1.0
    unserved_penalty = max(optimizer.SolveOptions.unserved_penalty_per_kwh, 5.0 * ev_penalty)
    pv_w, load_w = forecast.pv_w[sel].to_numpy(), forecast.load_w[sel].to_numpy()
    mask = None
    scenarios = problem_scenarios(config, forecast, np.asarray(sel), pv_w, load_w, errors) if outage is None else None
    if outage is not None:
        n = len(pv_w)
        pv_w, load_w = np.asarray(outage.pv_w, float)[:n], np.asarray(outage.load_w, float)[:n]
        mask = np.asarray(outage.outage, bool)[:n]
    return optimizer.Problem(
        horizon=horizon, outage=mask,
        pv_w=pv_w, load_w=load_w,
        batteries=bats,
        evs=tuple(evs),
        vpp=commitments,
        grid=optimizer.GridParams(config.grid.import_limit_w, config.grid.export_limit_w),
        prices=optimizer.Prices(buy=t["buy_per_kwh"].to_numpy(), sell=t["sell_per_kwh"].to_numpy(),
                                co2_kg_per_kwh=t["co2_kg_per_kwh"].to_numpy(),
                                co2_price_per_kg=config.tariff.co2_price_per_kg),
        options=optimizer.SolveOptions(
            solver=o.solver, time_limit_s=o.time_limit_s, mip_gap=o.mip_gap,
            recovery_penalty_per_kwh=config.reserve.recovery_penalty_per_kwh,
            ev_unmet_penalty_per_kwh=ev_penalty, unserved_penalty_per_kwh=unserved_penalty),
        scenarios=scenarios,
    )
