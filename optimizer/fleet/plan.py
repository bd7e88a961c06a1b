""":func:`plan_fleet`: the fleet planner's recipe, one named step per stage (see
:mod:`optimizer.fleet` for the decomposition)."""

from __future__ import annotations

import time

import numpy as np

from .aggregate import home_caps
from .checks import check_limits, check_offers_on_homes, check_vpp, headroom, homes_award_shortfall, plan_warnings
from .disaggregate import disaggregate
from .problem import FleetPlan, FleetProblem, clean_commitments
from .repair import HomeMeters, repair_meters, solve_aggregate

__all__ = ["feeder_cost", "plan_fleet"]


def plan_fleet(fp: FleetProblem) -> FleetPlan:
    """Plan every home behind the feeder (aggregate LP → disaggregation → repair → checks).

    EV sessions are planned in window groups; when the disaggregation leaves a session short
    although its group got its energy, that group's sessions are planned one by one in a
    second (exact, larger) solve.
    """
    t0 = time.perf_counter()
    fp = clean_commitments(fp)
    a = fp.arrays()
    caps = home_caps(fp, a)
    agg, ev = solve_aggregate(fp, a, caps)
    t1 = time.perf_counter()
    bw, soc = disaggregate(fp, agg.battery_w["fleet"], a, caps)
    t2 = time.perf_counter()
    m = repair_meters(fp, a, caps, agg, bw, ev)
    imp, exp = m.import_w, m.export_w
    viol = check_limits(fp, a, bw, soc, m.grid_w, imp, exp)
    head = headroom(fp, a, caps, bw, soc)
    agg = homes_award_shortfall(fp, agg, imp, exp, head)
    viol += check_vpp(fp, agg, bw, imp, exp, head)
    agg, offers_missed = check_offers_on_homes(fp, a, caps, agg, bw, soc, imp, exp)
    ev_unmet, track, warn = plan_warnings(fp, caps, agg, bw, ev, m.unserved_w)
    t3 = time.perf_counter()
    return FleetPlan(
        battery_w=bw, soc=soc, curtail_w=m.curtail_w, grid_w=m.grid_w, unserved_w=m.unserved_w,
        feeder_import_w=imp, feeder_export_w=exp, cost=feeder_cost(fp, m, bw), aggregate=agg,
        tracking_error_w=track, violations=viol + offers_missed, warnings=warn,
        timings={"aggregate_s": t1 - t0, "disaggregate_s": t2 - t1, "check_s": t3 - t2, "total_s": t3 - t0},
        ev_w=ev, ev_unmet_wh=ev_unmet,
        headroom_up_wh=head["up_wh"], headroom_down_wh=head["down_wh"],
        headroom_up_w=head["up_w"], headroom_down_w=head["down_w"],
    )


def feeder_cost(fp: FleetProblem, m: HomeMeters, bw: np.ndarray) -> np.ndarray:
    """The community bill per slot at the feeder (n,) [currency]:
    ``dt/1000 · (buy_eff·import − sell·export + deg·Σ_h |battery_w|)`` with
    ``buy_eff = buy + co2_price · co2`` [currency/kWh] and powers in W."""
    p, dt = fp.prices, fp.horizon.dt_h
    buy = np.asarray(p.buy, float) + p.co2_price_per_kg * np.asarray(p.co2_kg_per_kwh, float)
    cost = dt / 1000 * (buy * m.import_w - np.asarray(p.sell, float) * m.export_w)
    return cost + fp.degradation_cost_per_kwh * dt / 1000 * np.abs(bw).sum(axis=0)
