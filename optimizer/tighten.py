"""Valid inequalities that tighten the on/off deferrable loads (notation of :mod:`optimizer.model`).

The per-slot balance lets a relaxed ``on[d,t] ∈ [0, 1]`` run a load at a fraction of its
power, exactly soaking up a PV surplus ``σ_t = pv_t − load_t`` that would otherwise be
exported cheaply; the LP bound is then ~1.5 % below the optimum on the peer problem and the
MIP solver spends its time on cuts and sub-MIPs. Two families of cuts (the perspective of
the balance on each load) close that gap; with them the LP relaxation of the peer problem is
integral, so :func:`optimizer.solve_lp_first.run_lp_first` can stop after one LP.

For each slot with ``σ_t > 0`` (outside: the balance already states them), with
``supply_t = Σ_b p_dis + p_imp + p_unserved`` and
``sinks_t = Σ_b p_ch + p_exp + p_curt + Σ_s p_ev``:

* deficit: ``supply_t ≥ Σ_d (P_d − σ_t)⁺ · on[d,t]`` — a load running at full power in a
  slot whose surplus is smaller than its power needs the rest from the battery or the grid;
* surplus: ``sinks_t ≥ σ_t − Σ_d min(σ_t, P_d) · on[d,t]`` — a surplus no running load
  absorbs must be charged, exported or curtailed.

Validity (for binary ``on``; the balance is ``supply − sinks = Σ_{d on} P_d − σ``, and
``supply, sinks ≥ 0``): for ``σ ≥ 0``, ``Σ_{d on} (P_d − σ)⁺ ≤ (Σ_{d on} P_d − σ)⁺`` (the
positive part is superadditive once ``σ ≥ 0``) gives the first; ``σ − Σ_{d on} min(σ, P_d)``
is ``≤ 0`` if some running load has ``P_d ≥ σ`` and equals ``σ − Σ_{d on} P_d`` otherwise,
which gives the second. No integer point is cut off, so the optimum is unchanged.
"""

from __future__ import annotations

from .lp import Model, con, vname

__all__ = ["add_deferrable_cuts"]


def add_deferrable_cuts(m: Model) -> int:
    """Add the deficit and surplus cuts of every slot with a PV surplus; returns how many."""
    p = m.problem
    if not p.deferrable:
        return 0
    sigma = p.pv_w - p.load_w
    added = 0
    for t in range(p.horizon.n):
        s = float(sigma[t])
        if s <= 0:
            continue
        supply = [(m.p_imp[t], 1.0), (m.p_unserved[t], 1.0)] + [(m.p_dis[b.id][t], 1.0) for b in p.batteries]
        sinks = ([(m.p_exp[t], 1.0), (m.p_curt[t], 1.0)] + [(m.p_ch[b.id][t], 1.0) for b in p.batteries]
                 + [(vs[t], 1.0) for vs in m.p_ev if t in vs])
        deficit = [(m.on[d.id][t], -(d.power_w - s)) for d in p.deferrable if d.power_w > s]
        if deficit:
            con(m, supply + deficit, ">=", 0.0, vname("cut_deficit", "site", t))
            added += 1
        surplus = [(m.on[d.id][t], min(s, d.power_w)) for d in p.deferrable if d.power_w > 0]
        con(m, sinks + surplus, ">=", s, vname("cut_surplus", "site", t))
        added += 1
    return added
