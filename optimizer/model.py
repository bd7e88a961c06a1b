"""Formulation: :func:`build` turns a cleaned :class:`~optimizer.inputs.Problem` into a PuLP
MILP through a sequence of ``add_*`` functions, each stating its equations. This module
holds the site's energy balance (batteries, grid, EVs, deferrable loads, balance,
objective); VPP commitments and offers are in :mod:`optimizer.model_vpp`, the
:class:`~optimizer.lp.Model` container and naming helpers in :mod:`optimizer.lp`.

Notation: slot ``t`` of length ``dt`` [h]; battery ``b`` with capacity ``C_b`` [Wh];
``soc[b,t]`` is the SoC at the *end* of slot ``t`` (one state variable per slot, never a
cumulative sum); ``soc[b,-1] = soc0_b``. Powers in W, prices per kWh (hence ``/1000``).

Variable names are systematic, ``name[device,tNNN]``: ``p_ch``, ``p_dis``, ``soc``, ``rec``
(SoC below the floor), ``u_bat`` (1 = may charge), ``p_imp``, ``p_exp``, ``u_grid``
(1 = may import), ``p_curt``, ``p_unserved``, ``p_ev``, ``u_ev``, ``ev_unmet``, ``on``
(deferrable loads); VPP: ``disp_short``, ``award_short`` (VPP award kept short),
``offer_up`` / ``offer_dn`` (ΔkW offered per battery and offer slot ``jNNN``), ``o_up`` /
``o_dn`` (1 = the site offers in that offer slot).

When binaries are needed (``SolveOptions.allow_simultaneous is None``)
------------------------------------------------------------------------
Simultaneous import and export costs ``buy_eff − sell`` per kWh, so an LP never does it
while ``sell < buy_eff`` in every slot (``buy_eff = buy + co2_price · co2``): ``u_grid`` is
added only if some slot has ``sell ≥ buy_eff``. Simultaneous charge and discharge burns
``1 − η_c·η_d`` of the energy, which pays only when getting rid of energy earns money:
some ``buy_eff < 0``, or PV is not curtailable and some ``sell < 0`` or PV can exceed
load + export limit. ``u_bat`` is added only then. :func:`optimizer.solve.solve` checks the
returned plan anyway and re-solves with the binaries if a tie produced a simultaneous flow.
"""

from __future__ import annotations

import numpy as np
import pulp
from pulp import LpAffineExpression, lpSum

from .inputs import BatteryParams, Problem
from .lp import EPS, Model, con, per_slot, soc_reach, vname
from .tighten import add_deferrable_cuts
from .model_demand import add_demand
from .model_vpp import activation_terms, add_offer_variables, add_offers, add_vpp, pessimistic_margins

__all__ = ["Model", "build", "needs_binaries", "effective_floor", "pessimistic_margins", "add_vpp",
           "add_offer_variables", "add_offers"]

_TIE_PER_KWH = 1e-4  # [currency/kWh] throughput tie-break with offers


def buy_effective(problem: Problem) -> np.ndarray:
    """Import price including the CO2 price [currency/kWh]."""
    p = problem.prices
    return np.asarray(p.buy) + p.co2_price_per_kg * np.asarray(p.co2_kg_per_kwh)


def needs_binaries(problem: Problem) -> tuple[bool, bool]:
    """``(battery, grid)``: whether forbidding simultaneous flows needs binaries (module
    docstring gives the rule)."""
    opt = problem.options
    if opt.allow_simultaneous is not None:
        return (not opt.allow_simultaneous,) * 2
    buy = buy_effective(problem)
    sell = np.asarray(problem.prices.sell)
    grid = bool(np.any(sell >= buy))
    bat = bool(np.any(buy < 0))
    if not opt.pv_curtailable:
        surplus = problem.pv_w - problem.load_w > problem.grid.export_limit_w
        bat = bat or bool(np.any(sell < 0)) or bool(np.any(surplus))
    return bat and bool(problem.batteries), grid


def effective_floor(b: BatteryParams, outage: np.ndarray) -> np.ndarray:
    """Lower SoC limit per slot [fraction]: ``max(floor, soc_min)`` outside outages, ``soc_min``
    inside them."""
    return np.where(outage, b.soc_min, np.maximum(np.asarray(b.floor, float), b.soc_min))


def add_batteries(m: Model) -> None:
    """Battery state, limits, reserve floor and throughput cost.

    ``soc[b,t] = soc[b,t-1] + dt/C_b · (η_c·p_ch[b,t] − p_dis[b,t]/η_d)``;
    ``0 ≤ p_ch ≤ P_c[t]``, ``0 ≤ p_dis ≤ P_d[t]`` (limits may be per-slot arrays); ``soc[b,t] ≤ soc_max``;
    ``soc[b,t] + rec[b,t] ≥ floor_eff[b,t]`` with ``rec ≥ 0`` only in slots where the floor is
    out of reach (soc0 below it, or it rises faster than full-power charging, or above
    soc_max); elsewhere ``soc[b,t] ≥ floor_eff[b,t]`` is a hard bound.
    ``soc[b,n-1] ≥ soc_end`` (clipped to what is reachable).
    With offers the balance also carries the expected activation (see :func:`optimizer.model_vpp.add_offers`):
    ``… + α·dt/C_b·(up[b,j]/η_d − η_c·dn[b,j])`` for ``t`` in offer slot ``j``.
    Objective: ``+ deg_b · dt/1000 · (p_ch + p_dis) + pen_rec · C_b/1000 · rec``.
    With ``u_bat``: ``p_ch ≤ P_c·u``, ``p_dis ≤ P_d·(1 − u)``.
    """
    p = m.problem
    n, dt = p.horizon.n, p.horizon.dt_h
    pen = p.options.recovery_penalty_per_kwh
    for b in p.batteries:
        up, lo = soc_reach(b, n, dt)
        fl = effective_floor(b, p.outage)
        need_rec = fl > up + EPS
        m.floor[b.id] = fl
        soc_ub = np.maximum(b.soc_max, lo)
        soc_lb = np.where(need_rec, 0.0, np.minimum(fl, soc_ub))
        if b.soc_end is not None:
            target = min(b.soc_end, up[-1], soc_ub[-1])
            if target < b.soc_end - 1e-6:
                m.notes.append(f"{b.id}: soc_end {b.soc_end:.3f} unreachable, planning {target:.3f}")
            soc_lb[-1] = max(soc_lb[-1], target)
        ch, dis, soc = [], [], []
        rec: dict[int, pulp.LpVariable] = {}
        k_ch = dt * b.eta_charge / b.capacity_wh
        k_dis = dt / (b.eta_discharge * b.capacity_wh)
        deg = b.degradation_cost_per_kwh * dt / 1000.0
        if p.offers is not None:
            # held capacity makes curtailment and burning energy tie; the tie-break keeps
            # the LP from picking simultaneous charge and discharge (and a MIP re-solve)
            deg += _TIE_PER_KWH * dt / 1000.0
        pc, pd = per_slot(b.max_charge_w, n), per_slot(b.max_discharge_w, n)
        act = activation_terms(m, b, k_ch, k_dis)
        for t in range(n):
            c = m.var(vname("p_ch", b.id, t), 0, float(pc[t]))
            d = m.var(vname("p_dis", b.id, t), 0, float(pd[t]))
            s = m.var(vname("soc", b.id, t), float(soc_lb[t]), float(soc_ub[t]))
            ch.append(c)
            dis.append(d)
            soc.append(s)
            # soc[t] − soc[t−1] − k_ch·p_ch + k_dis·p_dis = 0
            if t == 0:
                con(m, [(s, 1.0), (c, -k_ch), (d, k_dis)] + act[t], "=", b.soc0, vname("soc_balance", b.id, t))
            else:
                con(m, [(s, 1.0), (soc[t - 1], -1.0), (c, -k_ch), (d, k_dis)] + act[t], "=", 0.0,
                     vname("soc_balance", b.id, t))
            if need_rec[t]:
                r = m.var(vname("rec", b.id, t), 0, float(fl[t]))
                rec[t] = r
                con(m, [(s, 1.0), (r, 1.0)], ">=", float(fl[t]), vname("floor", b.id, t))
                m.cost(r, pen * b.capacity_wh / 1000.0)
            m.cost(c, deg)
            m.cost(d, deg)
            if m.binaries_bat is True or (isinstance(m.binaries_bat, frozenset) and t in m.binaries_bat):
                u = m.var(vname("u_bat", b.id, t), 0, 1, "Binary")
                con(m, [(c, 1.0), (u, -float(pc[t]))], "<=", 0.0, vname("excl_ch", b.id, t))
                con(m, [(d, 1.0), (u, float(pd[t]))], "<=", float(pd[t]), vname("excl_dis", b.id, t))
        m.p_ch[b.id], m.p_dis[b.id], m.soc[b.id], m.rec[b.id] = ch, dis, soc, rec
        if need_rec.any():
            m.notes.append(
                f"{b.id}: reserve floor out of reach in {int(need_rec.sum())} slots "
                f"(soc0 {b.soc0:.3f}); recovery slack allowed"
            )


def add_grid(m: Model) -> None:
    """Grid connection and PV curtailment.

    ``0 ≤ p_imp[t] ≤ I``, ``0 ≤ p_exp[t] ≤ E`` (both 0 in outage slots);
    ``0 ≤ p_curt[t] ≤ pv[t]`` (0 if PV is not curtailable); ``p_unserved[t] ≥ 0``.
    Objective: ``+ dt/1000 · (buy_eff[t]·p_imp − sell[t]·p_exp + pen_unserved·p_unserved)``.
    With ``u_grid``: ``p_imp ≤ I·u``, ``p_exp ≤ E·(1 − u)``.
    """
    p = m.problem
    n, dt = p.horizon.n, p.horizon.dt_h
    buy = buy_effective(p)
    sell = np.asarray(p.prices.sell)
    g = p.grid
    for t in range(n):
        isl = bool(p.outage[t])
        imp = m.var(vname("p_imp", "grid", t), 0, 0.0 if isl else g.import_limit_w)
        exp = m.var(vname("p_exp", "grid", t), 0, 0.0 if isl else g.export_limit_w)
        curt = m.var(vname("p_curt", "pv", t), 0, float(p.pv_w[t]) if p.options.pv_curtailable else 0.0)
        uns = m.var(vname("p_unserved", "load", t), 0, float(p.load_w[t]))
        m.p_imp.append(imp)
        m.p_exp.append(exp)
        m.p_curt.append(curt)
        m.p_unserved.append(uns)
        m.cost(imp, dt / 1000.0 * buy[t])
        m.cost(exp, -dt / 1000.0 * sell[t])
        m.cost(uns, dt / 1000.0 * p.options.unserved_penalty_per_kwh)
        if m.binaries_grid and not isl:
            u = m.var(vname("u_grid", "grid", t), 0, 1, "Binary")
            con(m, [(imp, 1.0), (u, -g.import_limit_w)], "<=", 0.0, vname("excl_imp", "grid", t))
            con(m, [(exp, 1.0), (u, g.export_limit_w)], "<=", g.export_limit_w, vname("excl_exp", "grid", t))


def add_evs(m: Model) -> None:
    """EV sessions.

    For each session ``s`` and slot ``t ∈ [arrival, departure)``: ``p_ev[s,t] ≤ max_w`` (and
    ``min_w·u_ev ≤ p_ev ≤ max_w·u_ev`` with a binary ``u_ev`` only if ``min_w > 0``);
    ``Σ_t dt·p_ev[s,t] + ev_unmet[s] ≥ E_s``; ``Σ_t dt·p_ev[s,t] ≤ E_s``.
    Objective: ``+ pen_ev/1000 · ev_unmet[s]``.
    """
    p = m.problem
    n, dt = p.horizon.n, p.horizon.dt_h
    for s in p.evs:
        a, d = max(0, s.arrival_slot), min(n, s.departure_slot)
        vars_: dict[int, pulp.LpVariable] = {}
        for t in range(a, d):
            v = m.var(vname("p_ev", s.charger_id, t), 0, s.max_w)
            vars_[t] = v
            if s.min_w > 0:
                u = m.var(vname("u_ev", s.charger_id, t), 0, 1, "Binary")
                con(m, [(v, 1.0), (u, -s.max_w)], "<=", 0.0, vname("ev_max", s.charger_id, t))
                con(m, [(v, 1.0), (u, -s.min_w)], ">=", 0.0, vname("ev_min", s.charger_id, t))
        unmet = m.var(vname("ev_unmet", s.charger_id, a), 0, max(s.energy_wh, 0.0))
        m.cost(unmet, p.options.ev_unmet_penalty_per_kwh / 1000.0)
        pairs = [(v, dt) for v in vars_.values()]
        con(m, pairs + [(unmet, 1.0)], ">=", s.energy_wh, vname("ev_energy", s.charger_id, a))
        if pairs:
            con(m, pairs, "<=", s.energy_wh, vname("ev_energy_max", s.charger_id, a))
        m.p_ev.append(vars_)
        m.ev_unmet.append(unmet)


def add_deferrable(m: Model) -> None:
    """On/off loads: ``on[d,t] ∈ {0,1}``, ``Σ_t on[d,t] = total_steps_d``; power
    ``P_d·on[d,t]`` enters the balance."""
    p = m.problem
    n = p.horizon.n
    for d in p.deferrable:
        if d.total_steps > n:
            m.notes.append(f"{d.id}: needs {d.total_steps} steps, horizon has {n}; runs every slot")
        on = [m.var(vname("on", d.id, t), 0, 1, "Binary") for t in range(n)]
        con(m, [(v, 1.0) for v in on], "=", min(d.total_steps, n), f"run_steps[{d.id}]")
        m.on[d.id] = on


def add_balance(m: Model) -> None:
    """Power balance per slot [W]:
    ``pv − p_curt + Σ_b p_dis − Σ_b p_ch + p_imp − p_exp + p_unserved
    = load + Σ_s p_ev + Σ_d P_d·on``."""
    p = m.problem
    for t in range(p.horizon.n):
        pairs = [(m.p_curt[t], -1.0), (m.p_imp[t], 1.0), (m.p_exp[t], -1.0), (m.p_unserved[t], 1.0)]
        for b in p.batteries:
            pairs.append((m.p_dis[b.id][t], 1.0))
            pairs.append((m.p_ch[b.id][t], -1.0))
        for vars_ in m.p_ev:
            if t in vars_:
                pairs.append((vars_[t], -1.0))
        for d in p.deferrable:
            pairs.append((m.on[d.id][t], -d.power_w))
        con(m, pairs, "=", float(p.load_w[t] - p.pv_w[t]), vname("balance", "site", t))


def add_objective(m: Model) -> None:
    """``min Σ cost terms`` collected by the ``add_*`` functions (energy bill incl. CO2 price,
    degradation, and the priced slacks)."""
    m.lp.setObjective(lpSum([LpAffineExpression.from_list(m.objective)]))


def build(problem: Problem, binaries: tuple | None = None, offer_mode="mip", *, lp: pulp.LpProblem | None = None,
          prefix: str = "") -> Model:
    """Formulate a cleaned problem (see :meth:`Problem.cleaned`). ``binaries`` overrides
    :func:`needs_binaries` as ``(battery, grid)``; the battery entry may be a set of slots.
    ``offer_mode`` says how offers meet the pessimistic margins (:func:`optimizer.model_vpp.add_offers`).
    ``lp`` / ``prefix``: formulate into an existing LP with prefixed names (one scenario of
    :mod:`optimizer.solve_scenarios`; the caller sets the objective)."""
    m = Model(problem=problem, lp=lp if lp is not None else pulp.LpProblem("site_plan", pulp.LpMinimize),
              offer_mode=offer_mode, prefix=prefix)
    m.binaries_bat, m.binaries_grid = binaries if binaries is not None else needs_binaries(problem)
    add_offer_variables(m)
    add_batteries(m)
    add_grid(m)
    add_evs(m)
    add_deferrable(m)
    add_balance(m)
    add_deferrable_cuts(m)
    add_vpp(m)
    add_offers(m)
    add_demand(m)  # peak shaving, when the problem carries a demand charge
    add_objective(m)
    return m
