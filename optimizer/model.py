"""Formulation: :func:`build` turns a cleaned :class:`~optimizer.inputs.Problem` into a PuLP
MILP through a sequence of ``add_*`` functions, each stating its equations.

Notation: slot ``t`` of length ``dt`` [h]; battery ``b`` with capacity ``C_b`` [Wh];
``soc[b,t]`` is the SoC at the *end* of slot ``t`` (one state variable per slot, never a
cumulative sum); ``soc[b,-1] = soc0_b``. Powers in W, prices per kWh (hence ``/1000``).

Variable names are systematic, ``name[device,tNNN]``: ``p_ch``, ``p_dis``, ``soc``, ``rec``
(SoC below the floor), ``u_bat`` (1 = may charge), ``p_imp``, ``p_exp``, ``u_grid``
(1 = may import), ``p_curt``, ``p_unserved``, ``p_ev``, ``u_ev``, ``ev_unmet``, ``on``
(deferrable loads), ``disp_short``, ``award_short`` (VPP award kept short), ``offer_up`` / ``offer_dn`` (ΔkW offered per battery and
offer slot ``jNNN``), ``o_up`` / ``o_dn`` (1 = the site offers in that offer slot).

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

from dataclasses import dataclass, field

import numpy as np
import pulp
from pulp import LpAffineExpression, lpSum

from .inputs import BatteryParams, Problem

__all__ = ["Model", "build", "needs_binaries", "effective_floor", "pessimistic_margins"]

_E = 1e-9
_TIE_PER_KWH = 1e-4  # [currency/kWh] throughput tie-break with offers


@dataclass
class Model:
    """A built formulation: the PuLP problem plus the variables by role (inside
    ``optimizer`` only)."""

    problem: Problem
    lp: pulp.LpProblem
    objective: list[tuple[pulp.LpVariable, float]] = field(default_factory=list)
    p_ch: dict[str, list] = field(default_factory=dict)
    p_dis: dict[str, list] = field(default_factory=dict)
    soc: dict[str, list] = field(default_factory=dict)
    rec: dict[str, dict[int, pulp.LpVariable]] = field(default_factory=dict)
    floor: dict[str, np.ndarray] = field(default_factory=dict)
    p_imp: list = field(default_factory=list)
    p_exp: list = field(default_factory=list)
    p_curt: list = field(default_factory=list)
    p_unserved: list = field(default_factory=list)
    p_ev: list[dict[int, pulp.LpVariable]] = field(default_factory=list)
    ev_unmet: list = field(default_factory=list)
    on: dict[str, list] = field(default_factory=dict)
    disp_short: dict[int, pulp.LpVariable] = field(default_factory=dict)
    award_short_up: dict[int, pulp.LpVariable] = field(default_factory=dict)
    award_short_dn: dict[int, pulp.LpVariable] = field(default_factory=dict)
    offer_up: dict[str, list] = field(default_factory=dict)
    offer_dn: dict[str, list] = field(default_factory=dict)
    o_up: list = field(default_factory=list)
    o_dn: list = field(default_factory=list)
    binaries_bat: bool | frozenset[int] = False
    offer_mode: object = "none"
    binaries_grid: bool = False
    n_binaries: int = 0
    notes: list[str] = field(default_factory=list)

    def var(self, name: str, lb: float, ub: float, cat: str = "Continuous") -> pulp.LpVariable:
        if cat == "Binary":
            self.n_binaries += 1
        return self.lp.add_variable(name, lb, ub, cat)

    def cost(self, v: pulp.LpVariable, c: float) -> None:
        """Add ``c · v`` to the objective."""
        if c:
            self.objective.append((v, float(c)))


def _name(var: str, dev: str, t: int) -> str:
    return f"{var}[{dev},t{t:03d}]"


def _con(m: Model, pairs: list[tuple], sense: str, rhs: float, name: str) -> None:
    e = LpAffineExpression.from_list(pairs)
    if sense == "<=":
        c = e <= rhs
    elif sense == ">=":
        c = e >= rhs
    else:
        c = e == rhs
    m.lp.addConstraint(c, name)


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


def _pmax(x, n: int) -> np.ndarray:
    """A power limit [W] as a per-slot array (scalars broadcast)."""
    return np.broadcast_to(np.asarray(x, float), (n,))


def _reach(b: BatteryParams, n: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Highest and lowest SoC reachable at the end of each slot [fraction]."""
    up_step = np.cumsum(_pmax(b.max_charge_w, n)) * b.eta_charge * dt / b.capacity_wh
    lo_step = np.cumsum(_pmax(b.max_discharge_w, n)) * dt / (b.eta_discharge * b.capacity_wh)
    up = np.minimum(max(b.soc_max, b.soc0), b.soc0 + up_step)
    lo = np.maximum(min(b.soc_min, b.soc0), b.soc0 - lo_step)
    return up, lo


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
    With offers the balance also carries the expected activation (see :func:`add_offers`):
    ``… + α·dt/C_b·(up[b,j]/η_d − η_c·dn[b,j])`` for ``t`` in offer slot ``j``.
    Objective: ``+ deg_b · dt/1000 · (p_ch + p_dis) + pen_rec · C_b/1000 · rec``.
    With ``u_bat``: ``p_ch ≤ P_c·u``, ``p_dis ≤ P_d·(1 − u)``.
    """
    p = m.problem
    n, dt = p.horizon.n, p.horizon.dt_h
    pen = p.options.recovery_penalty_per_kwh
    for b in p.batteries:
        up, lo = _reach(b, n, dt)
        fl = effective_floor(b, p.outage)
        need_rec = fl > up + _E
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
        pc, pd = _pmax(b.max_charge_w, n), _pmax(b.max_discharge_w, n)
        act = _activation_terms(m, b, k_ch, k_dis)
        for t in range(n):
            c = m.var(_name("p_ch", b.id, t), 0, float(pc[t]))
            d = m.var(_name("p_dis", b.id, t), 0, float(pd[t]))
            s = m.var(_name("soc", b.id, t), float(soc_lb[t]), float(soc_ub[t]))
            ch.append(c)
            dis.append(d)
            soc.append(s)
            # soc[t] − soc[t−1] − k_ch·p_ch + k_dis·p_dis = 0
            if t == 0:
                _con(m, [(s, 1.0), (c, -k_ch), (d, k_dis)] + act[t], "=", b.soc0, _name("soc_balance", b.id, t))
            else:
                _con(m, [(s, 1.0), (soc[t - 1], -1.0), (c, -k_ch), (d, k_dis)] + act[t], "=", 0.0,
                     _name("soc_balance", b.id, t))
            if need_rec[t]:
                r = m.var(_name("rec", b.id, t), 0, float(fl[t]))
                rec[t] = r
                _con(m, [(s, 1.0), (r, 1.0)], ">=", float(fl[t]), _name("floor", b.id, t))
                m.cost(r, pen * b.capacity_wh / 1000.0)
            m.cost(c, deg)
            m.cost(d, deg)
            if m.binaries_bat is True or (isinstance(m.binaries_bat, frozenset) and t in m.binaries_bat):
                u = m.var(_name("u_bat", b.id, t), 0, 1, "Binary")
                _con(m, [(c, 1.0), (u, -float(pc[t]))], "<=", 0.0, _name("excl_ch", b.id, t))
                _con(m, [(d, 1.0), (u, float(pd[t]))], "<=", float(pd[t]), _name("excl_dis", b.id, t))
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
        imp = m.var(_name("p_imp", "grid", t), 0, 0.0 if isl else g.import_limit_w)
        exp = m.var(_name("p_exp", "grid", t), 0, 0.0 if isl else g.export_limit_w)
        curt = m.var(_name("p_curt", "pv", t), 0, float(p.pv_w[t]) if p.options.pv_curtailable else 0.0)
        uns = m.var(_name("p_unserved", "load", t), 0, float(p.load_w[t]))
        m.p_imp.append(imp)
        m.p_exp.append(exp)
        m.p_curt.append(curt)
        m.p_unserved.append(uns)
        m.cost(imp, dt / 1000.0 * buy[t])
        m.cost(exp, -dt / 1000.0 * sell[t])
        m.cost(uns, dt / 1000.0 * p.options.unserved_penalty_per_kwh)
        if m.binaries_grid and not isl:
            u = m.var(_name("u_grid", "grid", t), 0, 1, "Binary")
            _con(m, [(imp, 1.0), (u, -g.import_limit_w)], "<=", 0.0, _name("excl_imp", "grid", t))
            _con(m, [(exp, 1.0), (u, g.export_limit_w)], "<=", g.export_limit_w, _name("excl_exp", "grid", t))


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
            v = m.var(_name("p_ev", s.charger_id, t), 0, s.max_w)
            vars_[t] = v
            if s.min_w > 0:
                u = m.var(_name("u_ev", s.charger_id, t), 0, 1, "Binary")
                _con(m, [(v, 1.0), (u, -s.max_w)], "<=", 0.0, _name("ev_max", s.charger_id, t))
                _con(m, [(v, 1.0), (u, -s.min_w)], ">=", 0.0, _name("ev_min", s.charger_id, t))
        unmet = m.var(_name("ev_unmet", s.charger_id, a), 0, max(s.energy_wh, 0.0))
        m.cost(unmet, p.options.ev_unmet_penalty_per_kwh / 1000.0)
        pairs = [(v, dt) for v in vars_.values()]
        _con(m, pairs + [(unmet, 1.0)], ">=", s.energy_wh, _name("ev_energy", s.charger_id, a))
        if pairs:
            _con(m, pairs, "<=", s.energy_wh, _name("ev_energy_max", s.charger_id, a))
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
        on = [m.var(_name("on", d.id, t), 0, 1, "Binary") for t in range(n)]
        _con(m, [(v, 1.0) for v in on], "=", min(d.total_steps, n), f"run_steps[{d.id}]")
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
        _con(m, pairs, "=", float(p.load_w[t] - p.pv_w[t]), _name("balance", "site", t))


def add_vpp(m: Model) -> None:
    """VPP awards stay deliverable as far as physics allows, and dispatch is followed (not in
    outage slots).

    Each award slot ``t`` and side has a shortfall ``a_up[t]`` / ``a_dn[t]`` ≥ 0 [W]: the part
    of the award the plan cannot keep deliverable (the rest, ``A − a``, is). Sums run over
    the batteries ``B_t`` not recovering in slot ``t`` (a battery whose floor is out of reach,
    see :func:`add_batteries`, holds no award: recovery comes first). With
    ``Ê_b[k,t] = η_d·C_b·(soc[b,k] − floor[b,t])`` (0 where ``soc[b,k]`` cannot reach
    ``floor[b,t]``):

    Up (``A_up[t]`` W for ``τ`` h): ``Σ_b (P_d − p_dis + p_ch) + a_up ≥ A_up``;
    ``Σ_b Ê_b[k,t] + τ·a_up ≥ A_up·τ`` for ``k = t`` and ``k = t−1`` (for ``t = 0`` a lower
    bound on ``a_up`` from ``soc0``: ``A_up − Σ_b η_d·C_b·(soc0 − floor)⁺/τ``);
    ``p_exp − p_imp + A_up − a_up ≤ E``.
    Down (``A_dn``): ``Σ_b (P_c + p_dis − p_ch) + a_dn ≥ A_dn``;
    ``Σ_b C_b/η_c·(soc_max − soc[b,t]) + τ·a_dn ≥ A_dn·τ``; ``p_imp − p_exp + A_dn − a_dn ≤ I``.
    Objective: ``+ pen_unserved·dt/1000·(a_up + a_dn)`` — an award kept short by ``a`` W for
    one slot costs as much as ``a`` W of unserved load for that slot, far above any energy
    price, so the plan keeps every award it physically can. With all shortfalls 0 these are
    the hard award constraints (same plan, same objective).

    The reserve floor is never traded for an award: where it is held, ``soc ≥ floor`` is a
    hard variable bound no shortfall relaxes; where it is out of reach the recovering
    battery is not in ``B_t``, so no award pays it to recover slower or discharge deeper
    (a multi-battery site's down award can still compete with its recovery charging for
    import room). Only award slots get the shortfall variables.

    Dispatch ``D[t]`` (W, > 0 discharge): ``Σ_b (p_dis − p_ch) + s⁺ − s⁻ = D[t]`` with the
    shortfall ``s± ≥ 0`` priced like unserved load.
    """
    p = m.problem
    v = p.vpp
    if v is None or not p.batteries:
        return
    n, dt = p.horizon.n, p.horizon.dt_h
    tau = v.duration_s / 3600.0
    up, dn = np.asarray(v.award_up_w), np.asarray(v.award_down_w)
    pen = dt / 1000.0 * p.options.unserved_penalty_per_kwh
    reach = {b.id: _reach(b, n, dt)[0] for b in p.batteries}
    for t in range(n):
        if p.outage[t] or (up[t] <= 0 and dn[t] <= 0):
            continue
        bats = [b for b in p.batteries if t not in m.rec[b.id]]
        if up[t] > 0:
            # from soc0 (start of slot 0) only a bound: what is above the floors now
            avail0 = sum(b.eta_discharge * b.capacity_wh * max(b.soc0 - float(m.floor[b.id][t]), 0.0) for b in bats)
            lb0 = max(float(up[t]) - avail0 / tau, 0.0) if t == 0 else 0.0
            if lb0 > _E:
                m.notes.append(f"slot {t}: VPP up award not deliverable from soc0")
            a = m.var(_name("award_short", "up", t), lb0, None)
            m.cost(a, pen)
            m.award_short_up[t] = a
            pd_sum = sum(_pmax(b.max_discharge_w, n)[t] for b in bats)
            _con(m, [x for b in bats for x in ((m.p_dis[b.id][t], -1.0), (m.p_ch[b.id][t], 1.0))] + [(a, 1.0)],
                 ">=", float(up[t] - pd_sum), _name("vpp_up_power", "site", t))
            for k in (t - 1, t):
                if k < 0:
                    continue
                pairs, const = [(a, tau)], 0.0  # Σ_b η_d·C_b·(soc[b,k] − floor[b,t]) + τ·a ≥ A·τ
                for b in bats:
                    e, fl = b.eta_discharge * b.capacity_wh, float(m.floor[b.id][t])
                    if reach[b.id][k] > fl + _E:
                        pairs.append((m.soc[b.id][k], e))
                        const -= e * fl
                _con(m, pairs, ">=", float(up[t] * tau - const), _name("vpp_up_energy", "site", t) + f"_{k - t + 1}")
            _con(m, [(m.p_exp[t], 1.0), (m.p_imp[t], -1.0), (a, -1.0)], "<=",
                 float(p.grid.export_limit_w - up[t]), _name("vpp_up_grid", "site", t))
        if dn[t] > 0:
            a = m.var(_name("award_short", "down", t), 0, None)
            m.cost(a, pen)
            m.award_short_dn[t] = a
            pc_sum = sum(_pmax(b.max_charge_w, n)[t] for b in bats)
            _con(m, [x for b in bats for x in ((m.p_dis[b.id][t], 1.0), (m.p_ch[b.id][t], -1.0))] + [(a, 1.0)],
                 ">=", float(dn[t] - pc_sum), _name("vpp_down_power", "site", t))
            _con(m, [(m.soc[b.id][t], -b.capacity_wh / b.eta_charge) for b in bats] + [(a, tau)], ">=",
                 float(dn[t] * tau - sum(b.capacity_wh / b.eta_charge * b.soc_max for b in bats)),
                 _name("vpp_down_energy", "site", t))
            _con(m, [(m.p_imp[t], 1.0), (m.p_exp[t], -1.0), (a, -1.0)], "<=",
                 float(p.grid.import_limit_w - dn[t]), _name("vpp_down_grid", "site", t))
    bats = p.batteries
    if v.dispatch_w is not None:
        disp = np.asarray(v.dispatch_w, float)
        for t in range(n):
            if not np.isfinite(disp[t]) or p.outage[t]:
                continue
            sp = m.var(_name("disp_short", "up", t), 0, None)
            sn = m.var(_name("disp_short", "down", t), 0, None)
            pairs = [x for b in bats for x in ((m.p_dis[b.id][t], 1.0), (m.p_ch[b.id][t], -1.0))]
            _con(m, pairs + [(sp, 1.0), (sn, -1.0)], "=", float(disp[t]), _name("vpp_dispatch", "site", t))
            m.cost(sp, dt / 1000.0 * p.options.unserved_penalty_per_kwh)
            m.cost(sn, dt / 1000.0 * p.options.unserved_penalty_per_kwh)
            m.disp_short[t] = (sp, sn)


def pessimistic_margins(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """Extra site power [W] per plan slot the batteries must cover during an activation in
    the pessimistic case: ``Δ_up = (pv_p50 − pv_low)⁺ + (load_high − load_p50)⁺`` (less PV or
    more load eats into an up delivery) and ``Δ_dn = (pv_high − pv_p50)⁺ + (load_p50 −
    load_low)⁺`` (more PV or less load eats into a down delivery)."""
    o = problem.offers
    n = problem.horizon.n
    if o is None:
        return np.zeros(n), np.zeros(n)

    def gap(a, b):
        return np.zeros(n) if a is None or b is None else np.clip(np.asarray(a) - np.asarray(b), 0.0, None)

    pv, load = problem.pv_w, problem.load_w
    return gap(pv, o.pv_low_w) + gap(o.load_high_w, load), gap(o.pv_high_w, pv) + gap(load, o.load_low_w)


def _activation_terms(m: Model, b: BatteryParams, k_ch: float, k_dis: float) -> list[list[tuple]]:
    """Per plan slot, the SoC-balance terms of the expected activation of ``b``'s offers."""
    p = m.problem
    n = p.horizon.n
    out: list[list[tuple]] = [[] for _ in range(n)]
    o = p.offers
    if o is None or b.id not in m.offer_up:
        return out
    a = o.activation_ratio
    k = o.steps(p.horizon.slot_s)
    for j, (up, dn) in enumerate(zip(m.offer_up[b.id], m.offer_dn[b.id])):
        for t in range(j * k, (j + 1) * k):
            if up is not None and a:
                out[t].append((up, a * k_dis))
            if dn is not None and a:
                out[t].append((dn, -a * k_ch))
    return out


def add_offer_variables(m: Model) -> None:
    """ΔkW offered per battery and offer slot ``j`` (plan slots ``j·k … j·k+k−1``):
    ``0 ≤ offer_up[b,j] ≤ min_t P_d[b,t]``, ``0 ≤ offer_dn[b,j] ≤ min_t P_c[b,t]``; no variable
    (offer 0) in blocked slots or where that side's capacity price is ≤ 0 or missing.
    Run before :func:`add_batteries` (the SoC balance carries the expected activation)."""
    p = m.problem
    o = p.offers
    if o is None or not p.batteries:
        return
    n = p.horizon.n
    k = o.steps(p.horizon.slot_s)
    n_off = n // k
    cu, cd = o.prices.capacity_up, o.prices.capacity_down
    for b in p.batteries:
        pc, pd = _pmax(b.max_charge_w, n), _pmax(b.max_discharge_w, n)
        ups, dns = [], []
        for j in range(n_off):
            sl = slice(j * k, (j + 1) * k)
            ok = j not in o.blocked
            ups.append(m.var(f"offer_up[{b.id},j{j:03d}]", 0, float(pd[sl].min()))
                       if ok and np.isfinite(cu[j]) and cu[j] > 0 else None)
            dns.append(m.var(f"offer_dn[{b.id},j{j:03d}]", 0, float(pc[sl].min()))
                       if ok and np.isfinite(cd[j]) and cd[j] > 0 else None)
        m.offer_up[b.id], m.offer_dn[b.id] = ups, dns


def add_offers(m: Model) -> None:
    """Offers stay deliverable from any state the plan allows, and earn their price.

    Offer slot ``j`` (plan slots ``s = j·k … s+k−1``), activation of ``τ = duration_s`` lasting
    ``w = ⌈τ/dt⌉`` plan slots and starting at any plan slot of ``j``. For each plan slot
    ``t ∈ [s, s+k−1+w−1]`` the worst case is the earliest start ``r = max(s, t−w+1)``, after
    ``i = t−r+1`` slots of activation. With ``w_b = C_b/Σ C`` (each battery covers its share
    of the pessimistic margins ``Δ`` of :func:`pessimistic_margins`):

    * up energy: ``soc[b,t] − X[b,r..t] − k_d·(i·up[b,j] + w_b·Σ_{u=r..t} Δ_up[u]·o_up[j]) ≥ floor[b,t]``
    * up power: ``p_dis[b,t] + up[b,j] + w_b·Δ_up[t]·o_up[j] ≤ P_d[b,t]``
    * down energy: ``soc[b,t] − X[b,r..t] + k_d·(i·dn[b,j] + w_b·Σ Δ_dn·o_dn[j]) ≤ soc_max``
    * down power: ``p_ch[b,t] + dn[b,j] + w_b·Δ_dn[t]·o_dn[j] ≤ P_c[b,t]``

    (a call never counts on dropping a planned charge, resp. discharge, for power headroom:
    that credit would pay the LP to charge and discharge at once)

    where ``k_d = dt/(η_d·C_b)`` (the larger SoC effect per W: a call may stop a planned
    charge, ``η_c < 1/η_d``, or stop a planned discharge, ``1/η_d``) and ``X[b,r..t] =
    Σ_u α·dt/C_b·(η_c·dn[b,j(u)] − up[b,j(u)]/η_d)`` the expected activation that ``soc``
    carries over those slots (during a call it is replaced by the call itself).
    * grid: ``p_exp[t] − p_imp[t] + Σ_b up[b,j] ≤ E``, ``p_imp[t] − p_exp[t] + Σ_b dn[b,j] ≤ I``
      for ``t`` in the window.

    ``o[j]`` says whether slot ``j`` carries its margin (``up[b,j] = 0`` where it does not), by
    ``Model.offer_mode``: ``"mip"`` a binary with ``up[b,j] ≤ P_d·o_up[j]``; ``"p50"`` no margins
    (a first pass on the median forecast); a dict ``{(side, j): True}`` fixes ``o = 1`` for
    those slots (if the margin alone fits the battery) and ``o = 0`` elsewhere.
    :func:`optimizer.solve.solve` runs ``"p50"`` then the dict of the slots it offered: two
    LPs instead of a MIP.

    Outside the call the plan's expected trajectory stands; after it the controller re-plans
    (and the reserve state machine holds the floor). An offer whose window meets a slot where
    the floor is out of reach (recovery slack) is 0: offers never cut the reserve.

    Objective: ``− Σ_j Σ_b [cap_up[j]·up + cap_dn[j]·dn]/1000
    − α·h_j/1000·(e_up[j]·up + e_dn[j]·dn)`` with ``h_j`` the offer slot length [h].
    """
    p = m.problem
    o = p.offers
    if o is None or not p.batteries or not m.offer_up:
        return
    n, dt = p.horizon.n, p.horizon.dt_h
    k = o.steps(p.horizon.slot_s)
    w = max(1, int(np.ceil(o.duration_s / p.horizon.slot_s - 1e-9)))
    d_up, d_dn = pessimistic_margins(p)
    total_c = sum(b.capacity_wh for b in p.batteries)
    pr = o.prices
    h_j = o.slot_s / 3600.0
    a = o.activation_ratio
    n_off = n // k
    bats = p.batteries
    for j in range(n_off):
        s0 = j * k
        ts = range(s0, min(n, s0 + k - 1 + w))
        for side, d, var_of in (("up", d_up, m.offer_up), ("dn", d_dn, m.offer_dn)):
            vs = [var_of[b.id][j] for b in bats]
            if all(v is None for v in vs):
                continue
            cap = pr.capacity_up[j] if side == "up" else pr.capacity_down[j]
            en = pr.energy_up[j] if side == "up" else pr.energy_down[j]
            en = en if np.isfinite(en) else 0.0
            ind = None  # None: no margin; a binary (``"mip"``); 1.0: margin fixed on
            mode = m.offer_mode
            if np.any(d[s0:s0 + k - 1 + w] > _E) and mode != "p50":
                if mode == "mip":
                    ind = m.var(f"o_{side}[site,j{j:03d}]", 0, 1, "Binary")
                    (m.o_up if side == "up" else m.o_dn).append(ind)
                elif isinstance(mode, dict) and mode.get((side, j)) and _margin_reachable(m, side, d, s0, ts, w):
                    ind = 1.0
                else:
                    for v in vs:
                        if v is not None:
                            _con(m, [(v, 1.0)], "<=", 0.0, f"offer_{side}_off[{v.name}]")
                    continue
            for b, v in zip(bats, vs):
                if v is None:
                    continue
                m.cost(v, -(cap / 1000.0 + a * h_j * en / 1000.0))
                wb = b.capacity_wh / total_c
                if isinstance(ind, pulp.LpVariable):
                    _con(m, [(v, 1.0), (ind, -float(v.upBound))], "<=", 0.0, f"offer_{side}_on[{b.id},j{j:03d}]")
                if any(t in m.rec[b.id] for t in ts):
                    _con(m, [(v, 1.0)], "<=", 0.0, f"offer_{side}_floor_out_of_reach[{b.id},j{j:03d}]")
                    continue
                pc, pd = _pmax(b.max_charge_w, n), _pmax(b.max_discharge_w, n)
                kd = dt / (b.eta_discharge * b.capacity_wh)
                kc = dt * b.eta_charge / b.capacity_wh
                for t in ts:
                    r = max(s0, t - w + 1)
                    i = t - r + 1
                    dsum = float(d[r:t + 1].sum()) * wb
                    tag = f"[{b.id},j{j:03d},t{t:03d}]"
                    # soc[t] minus the expected activation of slots r..t (replaced by the full one)
                    coef: dict = {}
                    for u in range(r, t + 1):
                        ju = u // k
                        if ju >= n_off:
                            continue
                        for x, c in ((m.offer_up[b.id][ju], a * kd), (m.offer_dn[b.id][ju], -a * kc)):
                            if x is not None and c:
                                coef[x] = coef.get(x, 0.0) + c
                    sign = -1.0 if side == "up" else 1.0
                    coef[v] = coef.get(v, 0.0) + sign * i * kd
                    pairs = [(m.soc[b.id][t], 1.0)] + list(coef.items())
                    e_margin = p_margin = 0.0  # margins fixed on move to the right-hand side
                    if ind is not None and dsum:
                        if isinstance(ind, float):
                            e_margin = sign * kd * dsum
                        else:
                            pairs.append((ind, sign * kd * dsum))
                    if side == "up":
                        _con(m, pairs, ">=", float(m.floor[b.id][t]) - e_margin, "offer_up_energy" + tag)
                        pairs = [(m.p_dis[b.id][t], 1.0), (v, 1.0)]
                        lim = float(pd[t])
                    else:
                        _con(m, pairs, "<=", float(b.soc_max) - e_margin, "offer_dn_energy" + tag)
                        pairs = [(m.p_ch[b.id][t], 1.0), (v, 1.0)]
                        lim = float(pc[t])
                    if ind is not None and d[t] > _E:
                        if isinstance(ind, float):
                            p_margin = wb * float(d[t])
                        else:
                            pairs.append((ind, wb * float(d[t])))
                    _con(m, pairs, "<=", lim - p_margin, f"offer_{side}_power" + tag)
            live = [(v, 1.0) for v in vs if v is not None]
            for t in ts:
                if p.outage[t]:
                    continue
                if side == "up":
                    _con(m, [(m.p_exp[t], 1.0), (m.p_imp[t], -1.0)] + live, "<=",
                         float(p.grid.export_limit_w), f"offer_up_grid[site,j{j:03d},t{t:03d}]")
                else:
                    _con(m, [(m.p_imp[t], 1.0), (m.p_exp[t], -1.0)] + live, "<=",
                         float(p.grid.import_limit_w), f"offer_dn_grid[site,j{j:03d},t{t:03d}]")


def _margin_reachable(m: Model, side: str, d: np.ndarray, s0: int, ts: range, w: int) -> bool:
    """Whether the pessimistic margin of one offer slot alone (offer 0) fits every battery:
    ``w_b·Δ[t] < P[t]`` and the energy margin within the SoC the battery can reach."""
    p = m.problem
    n, dt = p.horizon.n, p.horizon.dt_h
    total_c = sum(b.capacity_wh for b in p.batteries)
    for b in p.batteries:
        wb = b.capacity_wh / total_c
        lim = _pmax(b.max_discharge_w if side == "up" else b.max_charge_w, n)
        hi, lo = _reach(b, n, dt)
        kd = dt / (b.eta_discharge * b.capacity_wh)
        for t in ts:
            r = max(s0, t - w + 1)
            margin = kd * wb * float(d[r:t + 1].sum())
            if wb * d[t] >= lim[t]:
                return False
            if side == "up" and m.floor[b.id][t] + margin > min(b.soc_max, hi[t]) - 1e-6:
                return False
            if side == "dn" and b.soc_max - margin < max(m.floor[b.id][t], lo[t]) + 1e-6:
                return False
    return True


def add_objective(m: Model) -> None:
    """``min Σ cost terms`` collected by the ``add_*`` functions (energy bill incl. CO2 price,
    degradation, and the priced slacks)."""
    m.lp.setObjective(lpSum([LpAffineExpression.from_list(m.objective)]))


def build(problem: Problem, binaries: tuple | None = None, offer_mode="mip") -> Model:
    """Formulate a cleaned problem (see :meth:`Problem.cleaned`). ``binaries`` overrides
    :func:`needs_binaries` as ``(battery, grid)``; the battery entry may be a set of slots.
    ``offer_mode`` says how offers meet the pessimistic margins (:func:`add_offers`)."""
    m = Model(problem=problem, lp=pulp.LpProblem("site_plan", pulp.LpMinimize), offer_mode=offer_mode)
    m.binaries_bat, m.binaries_grid = binaries if binaries is not None else needs_binaries(problem)
    add_offer_variables(m)
    add_batteries(m)
    add_grid(m)
    add_evs(m)
    add_deferrable(m)
    add_balance(m)
    add_vpp(m)
    add_offers(m)
    add_objective(m)
    return m
