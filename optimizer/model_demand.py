"""Demand charge (高圧 基本料金) in the plan: peak shaving with the month's running maximum as
state. Hooked into :func:`optimizer.model.build` by :func:`add_demand`; inactive unless the
problem carries :class:`DemandParams`.

The demand meter bills the highest 30-minute average import of the month. With planning
slots of ``dt`` (a divisor of 30 min, slots grouped by the 30-min コマ aligned to the epoch)::

    peak ≥ peak0                                   (the month so far: state, not decided)
    peak ≥ Σ_{t∈k} p_imp[t] · slot_s / 1800        for every コマ k the horizon touches
    objective += price_per_kw / 1000 · (peak − peak0)

and, when the problem carries offers, for every offer slot ``j`` and コマ ``k`` it overlaps
(plan slots ``J``), the import a full down call (``Σ_b dn[b,j]`` extra import) would meter::

    peak ≥ Σ_{t∈k} (p_imp[t] − p_exp[t]) · slot_s / 1800 + Σ_b dn[b,j] · |k ∩ J| · slot_s / 1800

so importing above the month's maximum costs ``price_per_kw`` per kW of new peak (a down
offer that would set a new peak when called pays for it at bid time, or is reduced), and
staying under it costs nothing (the battery shaves only what would raise the bill). A コマ
that started before the horizon counts its planned part only (the elapsed part is already in
``peak0`` if it mattered).

Shaving never sheds load nor leaves a car short: cutting ``x`` W of load or EV charging for one
コマ saves at most ``price_per_kw · x / 1000``, so unserved load and unmet EV energy get an
extra ``4 · price_per_kw`` per kWh (twice what any such cut could save) on top of their penalties.
"""
from __future__ import annotations

import numpy as np

from .inputs import MARKET_SLOT_S, DemandParams
from .lp import Model, con, vname

__all__ = ["DemandParams", "add_demand", "koma_groups"]


def koma_groups(start_s: float, slot_s: int, n: int) -> list[list[int]]:
    """Slot indices per 30-min コマ (epoch-aligned) for ``n`` slots of ``slot_s`` from ``start_s`` [s]."""
    k = np.floor((start_s + slot_s * np.arange(n)) / MARKET_SLOT_S).astype(np.int64)
    return [list(np.flatnonzero(k == v)) for v in np.unique(k)]


def add_demand(m: Model) -> None:
    """Peak variable and constraints (module docstring); no-op without ``problem.demand``."""
    p = m.problem
    d = getattr(p, "demand", None)
    if d is None or not m.p_imp:
        return
    h = p.horizon
    peak = m.var(vname("peak", "grid", 0), float(d.peak0_w), None)
    w = h.slot_s / MARKET_SLOT_S
    for g in koma_groups(h.start.timestamp(), h.slot_s, h.n):
        con(m, [(m.p_imp[t], w) for t in g] + [(peak, -1.0)], "<=", 0.0, vname("koma_peak", "grid", g[0]))
    _offer_peaks(m, peak, w)
    m.cost(peak, d.price_per_kw / 1000.0)  # the constant price · peak0 is left out of the objective
    extra = 4.0 * d.price_per_kw / 1000.0  # [currency/Wh]
    for uns in m.p_unserved:
        m.cost(uns, h.dt_h * extra)
    for unmet in m.ev_unmet:
        m.cost(unmet, extra)
    m.peak = peak


def _offer_peaks(m: Model, peak, w: float) -> None:
    """The metered peak of a full down call in each offer slot (module docstring)."""
    p = m.problem
    o = getattr(p, "offers", None)
    if o is None or not m.offer_dn:
        return
    h = p.horizon
    k = o.steps(h.slot_s)
    groups = koma_groups(h.start.timestamp(), h.slot_s, h.n)
    for j in range(h.n // k):
        dn = [v for vs in m.offer_dn.values() for v in (vs[j:j + 1] or [None]) if v is not None]
        if not dn:
            continue
        inside = set(range(j * k, j * k + k))
        for g in groups:
            share = len(inside.intersection(g)) * w
            if not share or any(p.outage[t] for t in g):
                continue  # no overlap; an outage コマ meters no import
            terms = [(m.p_imp[t], w) for t in g] + [(m.p_exp[t], -w) for t in g]
            con(m, terms + [(v, share) for v in dn] + [(peak, -1.0)], "<=", 0.0,
                vname("koma_peak_offer_dn", "grid", g[0]) + f"_j{j:03d}")
