"""Scenario planning: one MILP over ``k`` joint PV / load scenarios (:class:`~optimizer.scenarios.Scenarios`).

Each scenario ``s`` is a full copy of the site formulation (:func:`optimizer.model.build`, names
prefixed ``s{s}:``) with that scenario's PV and load; the copies share

* non-anticipativity: what is applied now is the same in every scenario — ``p_ch[b,0]``,
  ``p_dis[b,0]`` of every battery, ``p_ev[c,0]`` of every car (later slots may differ: the
  plan is re-made every interval, by then knowing more); on/off loads keep one schedule
  ``on[d,t]`` over the whole horizon in every scenario;
* the objective: the expected cost ``Σ_s w_s · cost_s``.

Everything else holds per scenario, as hard as in the single plan: the reserve floor is a
variable bound in every scenario (never traded for cost or awards); VPP awards are kept
deliverable in every scenario, so in the pessimistic ones too (low PV, high load), with the
same priced shortfall as :func:`optimizer.model_vpp.add_vpp`. The schedule returned is the
median scenario's (row 0) with the SoC of every scenario in ``Schedule.soc_scenarios``.

Offers (``Problem.offers``, the day-ahead bids): one offer per battery and offer slot, the
same variable in every scenario, deliverable from every scenario's own trajectory (energy
above the floor, power and grid room for the activation, :func:`optimizer.model_vpp.add_offers`
without per-slot margins: the scenarios are the margins); its revenue counts once (expected).
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
import pulp
from pulp import LpAffineExpression, lpSum

from .inputs import ForecastWarning, Problem, clean_forecast
from .lp import Model, con, vname
from .model import build, needs_binaries
from .scenarios import Scenarios
from .schedule import Schedule, SolverInfo

__all__ = ["solve_scenarios"]


def solve_scenarios(problem: Problem, scenarios: Scenarios) -> Schedule:
    """Plan ``problem`` over ``scenarios`` (``k`` rows; ``k = 1`` is exactly
    :func:`optimizer.solve.solve` on row 0). See the module docstring for the formulation."""
    import sys

    _solve = sys.modules["optimizer.solve"]  # the single-plan pipeline (validation, run, extraction)

    k = scenarios.k
    base = dataclasses.replace(problem, pv_w=scenarios.pv_w[0], load_w=scenarios.load_w[0], scenarios=None)
    if k == 1:
        return _solve.solve(base)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ForecastWarning)
        p = base.cleaned()
        n = p.horizon.n
        pvs = [clean_forecast(scenarios.pv_w[s], n, f"pv_w[scenario {s}]") for s in range(k)]
        lds = [clean_forecast(scenarios.load_w[s], n, f"load_w[scenario {s}]") for s in range(k)]
    repaired = sorted({str(w.message) for w in caught if issubclass(w.category, ForecastWarning)})
    _solve._check(p)
    # offers: the scenarios are the uncertainty, so no per-slot margins inside each of them
    offers = None if p.offers is None else dataclasses.replace(p.offers, pv_low_w=None, pv_high_w=None,
                                                               load_low_w=None, load_high_w=None)
    probs = [dataclasses.replace(p, pv_w=pvs[s], load_w=lds[s], offers=offers) for s in range(k)]
    need = [needs_binaries(q) for q in probs]
    binaries = (any(b for b, _ in need), any(g for _, g in need))
    w = np.asarray(scenarios.weights, float)
    w = w / w.sum()
    build_s, solve_s = time.perf_counter() - t0, 0.0
    for _ in range(2):
        t1 = time.perf_counter()
        lp, models = _formulate(probs, binaries, w)
        m0 = models[0]
        n_bin = m0.n_binaries  # the run decides LP-first vs MILP on the whole LP
        build_s += time.perf_counter() - t1
        solver, status, gap, s_s = _solve._run(m0)
        solve_s += s_s
        scheds = [_solve.extract(m) for m in models]
        if p.options.allow_simultaneous is not None or binaries == (True, True):
            break
        # a price tie let the LP pick a simultaneous flow somewhere: forbid it everywhere, once
        bat = any(_solve._simultaneous_slots(m) for m in models)
        grid = any(np.any(np.minimum(sc.grid_import_w, sc.grid_export_w) > _solve._TOL_W) for sc in scheds)
        if not ((bat and binaries[0] is not True) or (grid and not binaries[1])):
            break
        binaries = (binaries[0] or bat, binaries[1] or grid)
    problems = []
    for s, (q, sc, m) in enumerate(zip(probs, scheds, models)):
        problems += [f"scenario {s}: {x}" for x in _solve.validate(q, sc, m)]
    out = scheds[0]
    out.soc_scenarios = {bid: np.vstack([sc.soc[bid] for sc in scheds]) for bid in out.soc}
    out.warnings = repaired + m0.notes + _solve._slack_warnings(out) + problems
    if status != "Optimal":
        out.warnings.append(f"solver stopped with status {status} (gap {gap}); plan is feasible but not proven optimal")
    out.solver = SolverInfo(
        solver=solver, status=status, validated=not problems, gap=gap, build_s=build_s, solve_s=solve_s,
        objective=float(lp.objective.value() or 0.0), n_variables=lp.numVariables(),
        n_constraints=lp.numConstraints(), n_binaries=n_bin,
        max_residual_w=float(max(np.abs(_solve._residual(q, sc)).max(initial=0.0) for q, sc in zip(probs, scheds))))
    return out


def _formulate(probs: list[Problem], binaries: tuple, w: np.ndarray) -> tuple[pulp.LpProblem, list[Model]]:
    """One LP with a prefixed copy of the site formulation per scenario, the non-anticipativity
    constraints and the expected cost; ``models[0].n_binaries`` counts the binaries of all."""
    lp = pulp.LpProblem("site_plan_scenarios", pulp.LpMinimize)
    models = [build(q, binaries=binaries, offer_mode="none", lp=lp, prefix=f"s{s}:") for s, q in enumerate(probs)]
    _non_anticipative(models)
    lp.setObjective(lpSum([LpAffineExpression.from_list([(v, wi * c) for v, c in m.objective])
                           for m, wi in zip(models, w)]))
    models[0].n_binaries = sum(m.n_binaries for m in models)
    return lp, models


def _non_anticipative(models: list[Model]) -> None:
    """Slot-0 decisions of every scenario equal those of scenario 0."""
    m0 = models[0]
    p = m0.problem
    for s, m in enumerate(models[1:], start=1):
        pairs = []
        for b in p.batteries:
            pairs += [(m.p_ch[b.id][0], m0.p_ch[b.id][0]), (m.p_dis[b.id][0], m0.p_dis[b.id][0])]
        for vs, vs0 in zip(m.p_ev, m0.p_ev):
            if 0 in vs:
                pairs.append((vs[0], vs0[0]))
        for d in p.deferrable:
            # an on/off load keeps one schedule in every scenario (announced to its users;
            # it also keeps the MILP's binaries those of the single plan: the copies are
            # continuous, pinned to scenario 0's binaries)
            pairs += list(zip(m.on[d.id], m0.on[d.id]))
            for v in m.on[d.id]:
                v.cat = pulp.const.LpContinuous
            m.n_binaries -= len(m.on[d.id])
        for b in p.batteries:  # one offer, deliverable in every scenario
            for side in (m.offer_up, m.offer_dn):
                ref = (m0.offer_up if side is m.offer_up else m0.offer_dn).get(b.id, [])
                pairs += [(v, v0) for v, v0 in zip(side.get(b.id, []), ref) if v is not None and v0 is not None]
        for i, (a, b0) in enumerate(pairs):
            con(m, [(a, 1.0), (b0, -1.0)], "=", 0.0, vname("nonanticipative", str(i), 0))
