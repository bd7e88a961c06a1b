"""Formulation of VPP commitments and offers (``add_*`` builders called by
:func:`optimizer.model.build`, each stating its equations; notation as in
:mod:`optimizer.model`).

* :func:`add_vpp`: awards (``A_up`` / ``A_dn`` [W] for ``τ`` [h]) stay deliverable as far as
  physics allows, with a priced shortfall ``award_short[up|down,tNNN]``; a dispatch is
  followed, with a priced shortfall ``disp_short[up|down,tNNN]``.
* :func:`add_offer_variables`, :func:`add_offers`: ΔkW offered per battery and offer slot
  (``offer_up`` / ``offer_dn[bat,jNNN]``), deliverable from any state the plan allows
  including the pessimistic forecast margins (:func:`pessimistic_margins`); ``o_up`` /
  ``o_dn[site,jNNN]`` (1 = the site offers in that offer slot, ``"mip"`` mode only).
  :func:`activation_terms` is the expected activation the SoC balance of
  :func:`optimizer.model.add_batteries` carries.
"""

from __future__ import annotations

import numpy as np
import pulp

from .inputs import BatteryParams, Problem
from .lp import EPS, Model, con, per_slot, soc_reach, vname

__all__ = ["activation_terms", "add_offer_variables", "add_offers", "add_vpp", "pessimistic_margins"]


def add_vpp(m: Model) -> None:
    """VPP awards stay deliverable as far as physics allows, and dispatch is followed (not in
    outage slots).

    Each award slot ``t`` and side has a shortfall ``a_up[t]`` / ``a_dn[t]`` ≥ 0 [W]: the part
    of the award the plan cannot keep deliverable (the rest, ``A − a``, is). Sums run over
    the batteries ``B_t`` not recovering in slot ``t`` (a battery whose floor is out of reach,
    see :func:`optimizer.model.add_batteries`, holds no award: recovery comes first). With
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
    reach = {b.id: soc_reach(b, n, dt)[0] for b in p.batteries}
    for t in range(n):
        if p.outage[t] or (up[t] <= 0 and dn[t] <= 0):
            continue
        bats = [b for b in p.batteries if t not in m.rec[b.id]]
        if up[t] > 0:
            # from soc0 (start of slot 0) only a bound: what is above the floors now
            avail0 = sum(b.eta_discharge * b.capacity_wh * max(b.soc0 - float(m.floor[b.id][t]), 0.0) for b in bats)
            lb0 = max(float(up[t]) - avail0 / tau, 0.0) if t == 0 else 0.0
            if lb0 > EPS:
                m.notes.append(f"slot {t}: VPP up award not deliverable from soc0")
            a = m.var(vname("award_short", "up", t), lb0, None)
            m.cost(a, pen)
            m.award_short_up[t] = a
            pd_sum = sum(per_slot(b.max_discharge_w, n)[t] for b in bats)
            con(m, [x for b in bats for x in ((m.p_dis[b.id][t], -1.0), (m.p_ch[b.id][t], 1.0))] + [(a, 1.0)],
                 ">=", float(up[t] - pd_sum), vname("vpp_up_power", "site", t))
            for k in (t - 1, t):
                if k < 0:
                    continue
                pairs, const = [(a, tau)], 0.0  # Σ_b η_d·C_b·(soc[b,k] − floor[b,t]) + τ·a ≥ A·τ
                for b in bats:
                    e, fl = b.eta_discharge * b.capacity_wh, float(m.floor[b.id][t])
                    if reach[b.id][k] > fl + EPS:
                        pairs.append((m.soc[b.id][k], e))
                        const -= e * fl
                con(m, pairs, ">=", float(up[t] * tau - const), vname("vpp_up_energy", "site", t) + f"_{k - t + 1}")
            con(m, [(m.p_exp[t], 1.0), (m.p_imp[t], -1.0), (a, -1.0)], "<=",
                 float(p.grid.export_limit_w - up[t]), vname("vpp_up_grid", "site", t))
        if dn[t] > 0:
            a = m.var(vname("award_short", "down", t), 0, None)
            m.cost(a, pen)
            m.award_short_dn[t] = a
            pc_sum = sum(per_slot(b.max_charge_w, n)[t] for b in bats)
            con(m, [x for b in bats for x in ((m.p_dis[b.id][t], 1.0), (m.p_ch[b.id][t], -1.0))] + [(a, 1.0)],
                 ">=", float(dn[t] - pc_sum), vname("vpp_down_power", "site", t))
            con(m, [(m.soc[b.id][t], -b.capacity_wh / b.eta_charge) for b in bats] + [(a, tau)], ">=",
                 float(dn[t] * tau - sum(b.capacity_wh / b.eta_charge * b.soc_max for b in bats)),
                 vname("vpp_down_energy", "site", t))
            con(m, [(m.p_imp[t], 1.0), (m.p_exp[t], -1.0), (a, -1.0)], "<=",
                 float(p.grid.import_limit_w - dn[t]), vname("vpp_down_grid", "site", t))
    bats = p.batteries
    if v.dispatch_w is not None:
        disp = np.asarray(v.dispatch_w, float)
        for t in range(n):
            if not np.isfinite(disp[t]) or p.outage[t]:
                continue
            sp = m.var(vname("disp_short", "up", t), 0, None)
            sn = m.var(vname("disp_short", "down", t), 0, None)
            pairs = [x for b in bats for x in ((m.p_dis[b.id][t], 1.0), (m.p_ch[b.id][t], -1.0))]
            con(m, pairs + [(sp, 1.0), (sn, -1.0)], "=", float(disp[t]), vname("vpp_dispatch", "site", t))
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


def activation_terms(m: Model, b: BatteryParams, k_ch: float, k_dis: float) -> list[list[tuple]]:
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
    Run before :func:`optimizer.model.add_batteries` (the SoC balance carries the expected activation)."""
    p = m.problem
    o = p.offers
    if o is None or not p.batteries:
        return
    n = p.horizon.n
    k = o.steps(p.horizon.slot_s)
    n_off = n // k
    cu, cd = o.prices.capacity_up, o.prices.capacity_down
    for b in p.batteries:
        pc, pd = per_slot(b.max_charge_w, n), per_slot(b.max_discharge_w, n)
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
            if np.any(d[s0:s0 + k - 1 + w] > EPS) and mode != "p50":
                if mode == "mip":
                    ind = m.var(f"o_{side}[site,j{j:03d}]", 0, 1, "Binary")
                    (m.o_up if side == "up" else m.o_dn).append(ind)
                elif isinstance(mode, dict) and mode.get((side, j)) and _margin_reachable(m, side, d, s0, ts, w):
                    ind = 1.0
                else:
                    for v in vs:
                        if v is not None:
                            con(m, [(v, 1.0)], "<=", 0.0, f"offer_{side}_off[{v.name}]")
                    continue
            for b, v in zip(bats, vs):
                if v is None:
                    continue
                m.cost(v, -(cap / 1000.0 + a * h_j * en / 1000.0))
                wb = b.capacity_wh / total_c
                if isinstance(ind, pulp.LpVariable):
                    con(m, [(v, 1.0), (ind, -float(v.upBound))], "<=", 0.0, f"offer_{side}_on[{b.id},j{j:03d}]")
                if any(t in m.rec[b.id] for t in ts):
                    con(m, [(v, 1.0)], "<=", 0.0, f"offer_{side}_floor_out_of_reach[{b.id},j{j:03d}]")
                    continue
                pc, pd = per_slot(b.max_charge_w, n), per_slot(b.max_discharge_w, n)
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
                        con(m, pairs, ">=", float(m.floor[b.id][t]) - e_margin, "offer_up_energy" + tag)
                        pairs = [(m.p_dis[b.id][t], 1.0), (v, 1.0)]
                        lim = float(pd[t])
                    else:
                        con(m, pairs, "<=", float(b.soc_max) - e_margin, "offer_dn_energy" + tag)
                        pairs = [(m.p_ch[b.id][t], 1.0), (v, 1.0)]
                        lim = float(pc[t])
                    if ind is not None and d[t] > EPS:
                        if isinstance(ind, float):
                            p_margin = wb * float(d[t])
                        else:
                            pairs.append((ind, wb * float(d[t])))
                    con(m, pairs, "<=", lim - p_margin, f"offer_{side}_power" + tag)
            live = [(v, 1.0) for v in vs if v is not None]
            for t in ts:
                if p.outage[t]:
                    continue
                if side == "up":
                    con(m, [(m.p_exp[t], 1.0), (m.p_imp[t], -1.0)] + live, "<=",
                         float(p.grid.export_limit_w), f"offer_up_grid[site,j{j:03d},t{t:03d}]")
                else:
                    con(m, [(m.p_imp[t], 1.0), (m.p_exp[t], -1.0)] + live, "<=",
                         float(p.grid.import_limit_w), f"offer_dn_grid[site,j{j:03d},t{t:03d}]")


def _margin_reachable(m: Model, side: str, d: np.ndarray, s0: int, ts: range, w: int) -> bool:
    """Whether the pessimistic margin of one offer slot alone (offer 0) fits every battery:
    ``w_b·Δ[t] < P[t]`` and the energy margin within the SoC the battery can reach."""
    p = m.problem
    n, dt = p.horizon.n, p.horizon.dt_h
    total_c = sum(b.capacity_wh for b in p.batteries)
    for b in p.batteries:
        wb = b.capacity_wh / total_c
        lim = per_slot(b.max_discharge_w if side == "up" else b.max_charge_w, n)
        hi, lo = soc_reach(b, n, dt)
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
