"""Flexibility a planned site can offer an aggregator, per settlement window (30 min).

Counted from the site's batteries only, relative to the plan, never using energy below the
disaster-reserve floor. Up = more discharge / less charge (kW the site can add to export or
remove from import); down = more charge / less discharge. Units: W, Wh, s inside; the
:class:`FlexSlot` fields are kW, kWh, s.

Delivery model
--------------
An offer for window ``[a, a+W)`` may be called at any instant ``s`` of the window and must
then hold its ΔkW for the product duration ``τ`` (``duration_s``; the API passes
``vpp.duration_s``, default ``W``). The call therefore lies inside the *delivery horizon*
``H = [a, a+W+τ)``, rounded outwards to plan slots and cut at the plan's end.

Plan boundaries are ``j = −1 … n−1`` (``soc[−1] = soc0``, ``soc[j]`` = SoC at the end of plan
slot ``j``); the floor in force around boundary ``j`` is ``fl(j) = max(floor[j], floor[j+1])``
(``floor`` = the plan's effective floor incl. the storm floor and ``soc_min``). For battery
``b`` (``C`` capacity, ``w`` plan power > 0 discharge, ``P_d``/``P_c`` limits) and the
boundaries ``J(H)`` from the one before ``H`` to its last:

* ``m_up = min_{j∈J(H)} (soc[j] − fl(j))⁺``, ``up_wh_b = η_d·C·m_up``;
* ``m_dn = min_{j∈J(H)} (soc_max − soc[j])⁺``, ``dn_wh_b = C·m_dn / f`` with ``f = 1/η_d``
  if the plan discharges ``b`` anywhere in ``H`` (dropping a planned discharge stores
  ``1/η_d`` per AC Wh) else ``η_c``;
* ``up_w_b = min_{t∈H} (P_d − w)⁺``, ``dn_w_b = min_{t∈H} (P_c + w)⁺``;
* each battery contributes ``min(up_w_b, up_wh_b/τ)`` (its energy sustains its kW for ``τ``).

Site: ``up_kw = min(Σ_b min(up_w_b, up_wh_b/τ), min_{t∈H}(Σ_b (P_d−w)⁺ − A_up[t]),
min_{t∈H}(E_grid − (exp − imp) − A_up[t]), up_kwh/τ)`` and ``up_kwh = min(Σ_b up_wh_b,
award bound)``; down alike with ``I_grid − (imp − exp)``. ``A[t]`` are awards held by the plan
in slots of ``H`` *after* the window (the window's own award is subtracted by the caller,
:mod:`vpp.market.offers`, from the gross figure returned here). ``*_sustain_s = 3600·kwh/kw``
(≥ ``τ``). A window whose horizon meets an outage slot offers nothing (islanded).

Why the floor stays safe although the margin is taken over ``H`` only, not the whole
remaining plan: the SoC the plan leaves between two boundaries lies between their values
and the floor in force there is covered by ``fl``, so delivering ``ΔP ≤ wh_b/τ`` from any
``s`` in the window lowers the planned SoC by at most ``ΔP·τ/(η_d·C) ≤ m_up`` at every
instant of ``H`` (the worst case per AC Wh is ``1/η_d``: dropping a planned charge costs only
``η_c``) — the plan trajectory minus the delivery stays ≥ the floor for the whole call.
What the plan does *after* the call (the evening discharge to the floor, the midday charge
to ``soc_max``) is optional: the optimiser re-plans every ``plan_interval_s`` from measured
SoC with the floor as a hard bound, and the real-time controller clamps discharge at the
floor in between, so later planned usage shrinks instead of crossing the floor. The old
rule (minimum over the whole rest of the plan) offered ~0 kW whenever the plan later
touched the floor or ``soc_max``, i.e. almost always.

Awards are not counted twice. Awards in ``Problem.vpp`` are hard constraints of every
re-plan (:func:`optimizer.model_vpp.add_vpp`: ``Σ η_d·C·(soc − floor) ≥ A·τ_a`` at ``t−1`` and
``t``), so the energy they need cannot be dropped like planned usage. With the stored
energy an award needs ``N(t) = A[t]·τ_a / min_b η_d`` [Wh] (the worst case per AC Wh, up and
down alike), for every awarded slot ``t`` after the window: ``X·f ≤ S(j) − N(t)`` at ``j ∈ {t−1, t}`` and at
every boundary of ``H`` from ``t−1`` on (a call of this window may overlap that award's
call), where ``S(j) = Σ_b C·(soc[j] − fl(j))`` (up) resp. ``Σ_b C·(soc_max − soc[j])``
(down) and ``X`` the offered kWh (``f = 1/min η_d`` up, ``max_b f_b`` down). Awards of the
window's own slots are left to the caller (see above).

Not covered (known limits): (1) an award *before* the window whose call spills into it
(``τ_a`` beyond its slot) is not subtracted — the optimiser itself holds each award only at
its own slot; (2) two awards called back to back are each checked alone, as in the
optimiser, not their sum; (3) after the plan's end the state is unknown: the horizon is cut
there (the next re-plans cover it long before); (4) awards only count if the plan was
solved with them (``Problem.vpp``; the runtime's ``commitments_source``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np

from .inputs import MARKET_SLOT_S, Problem
from .schedule import Schedule

__all__ = ["FlexSlot", "flexibility"]


@dataclass
class FlexSlot:
    """Offerable flexibility for one settlement slot [kW, kWh, s]."""

    start: datetime
    duration_s: int
    up_kw: float
    down_kw: float
    up_kwh: float
    down_kwh: float
    up_sustain_s: float
    down_sustain_s: float

    def to_dict(self) -> dict:
        d = asdict(self)
        d["start"] = self.start.isoformat()
        return d


def _boundary_floor(floor: np.ndarray, soc_min: float) -> np.ndarray:
    """Floor in force around each boundary ``j = −1 … n−1`` (length ``n+1``): the larger of
    the floors of the two slots it separates; NaN (outage) slots are ignored, ``soc_min``
    if both are NaN."""
    left = np.r_[np.nan, floor]
    right = np.r_[floor, np.nan]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f = np.fmax(left, right)
    return np.where(np.isnan(f), soc_min, f)


def _award_need(award_w: np.ndarray, outage: np.ndarray, tau_h: float) -> np.ndarray:
    """AC energy [Wh] each slot's award must be able to deliver (0 in outage slots)."""
    return np.where(outage, 0.0, np.clip(award_w, 0.0, None)) * tau_h


def _award_bound(room: np.ndarray, need: np.ndarray, last_own: int, b0: int, b1: int) -> float:
    """Stored energy [Wh] the window may use without eating into later awards.

    ``room``: stored-energy margin per boundary (index ``j+1``); ``need``: stored energy per
    slot's award; awards of slots ``≤ last_own`` belong to the window itself. ``b0 … b1``:
    boundary indices (``j+1``) of the delivery horizon. ``inf`` when no later award exists.
    """
    n = need.size
    later = need.copy()
    later[: last_own + 1] = 0.0
    if not np.any(later > 0):
        return math.inf
    # R[i] for boundary i (= j+1): the largest later award whose slot t satisfies t−1 ≤ j,
    # and (j ≤ t or j inside the horizon)
    at = np.r_[0.0, later]  # award of slot t sits at boundary index t+1 (boundary t)
    nxt = np.r_[later, 0.0]  # award of slot j+1 seen from boundary j (= t−1)
    req = np.maximum(at, nxt)  # boundaries t−1 and t of each award
    # inside the horizon, every award started at or before j+1 may still be running
    run = np.maximum.accumulate(np.r_[later, 0.0])  # max_{t ≤ j+1} later[t] at index j+1
    req[b0:b1 + 1] = np.maximum(req[b0:b1 + 1], run[b0:b1 + 1])
    sel = req > 0
    return float(np.min(room[sel] - req[sel])) if sel.any() else math.inf


def flexibility(problem: Problem, schedule: Schedule, slot_s: int = MARKET_SLOT_S,
                duration_s: float | None = None) -> list[FlexSlot]:
    """Per ``slot_s`` window of the plan: up/down power [kW], energy [kWh] and sustain [s],
    each kW deliverable for ``duration_s`` [s] (default ``slot_s``) from any instant of the
    window (module docstring gives the rule and why the floor stays safe).

    Windows start on clock multiples of ``slot_s``; a leading part-window is skipped. Plan
    slots longer than ``slot_s`` give several windows.
    """
    if slot_s <= 0:
        raise ValueError("slot_s must be > 0")
    tau_s = float(slot_s if duration_s is None else duration_s)
    if not tau_s > 0:
        raise ValueError("duration_s must be > 0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # repairs were already reported by solve()
        p = problem.cleaned()
    n, ps = schedule.n, schedule.slot_s
    outage = np.asarray(p.outage, bool)
    bats = list(p.batteries)
    net = schedule.grid_export_w - schedule.grid_import_w
    grid_up = p.grid.export_limit_w - net
    grid_dn = p.grid.import_limit_w + net

    # per battery, per slot / boundary
    rows = []
    for b in bats:
        w = np.asarray(schedule.battery_w[b.id], float)
        soc_b = np.r_[b.soc0, schedule.soc[b.id]]  # boundary j at index j+1
        fl_b = _boundary_floor(np.asarray(schedule.floor[b.id], float), b.soc_min)
        pd = np.broadcast_to(np.asarray(b.max_discharge_w, float), (n,))
        pc = np.broadcast_to(np.asarray(b.max_charge_w, float), (n,))
        rows.append((b, w, soc_b - fl_b, b.soc_max - soc_b, np.clip(pd - w, 0, None), np.clip(pc + w, 0, None)))
    site_up_w = sum((r[4] for r in rows), np.zeros(n))
    site_dn_w = sum((r[5] for r in rows), np.zeros(n))

    # awards held by the plan (stored Wh, worst case per AC Wh)
    need_up = need_dn = np.zeros(n)
    a_up = a_dn = np.zeros(n)
    v = p.vpp
    if v is not None and bats:
        tau_a = float(v.duration_s) / 3600.0
        eta_d_min = min(b.eta_discharge for b in bats)
        a_up = np.where(outage, 0.0, np.clip(np.asarray(v.award_up_w, float), 0, None))
        a_dn = np.where(outage, 0.0, np.clip(np.asarray(v.award_down_w, float), 0, None))
        need_up = _award_need(a_up, outage, tau_a) / eta_d_min
        need_dn = _award_need(a_dn, outage, tau_a) / eta_d_min
    room_up = sum((b.capacity_wh * r[2] for b, r in zip(bats, rows)), np.zeros(n + 1))
    room_dn = sum((b.capacity_wh * r[3] for b, r in zip(bats, rows)), np.zeros(n + 1))

    out = []
    total_s = n * ps
    hours = tau_s / 3600.0
    # settlement windows sit on clock boundaries of ``slot_s`` (e.g. :00/:30), whatever the
    # plan's own start (a 15-min plan may start at :15 or :45)
    offset = int(-schedule.start.timestamp() % slot_s)
    for k in range((total_s - offset) // slot_s):
        a = offset + k * slot_s
        k0 = a // ps
        own_last = min(n, -(-(a + slot_s) // ps)) - 1  # last plan slot of the window
        kl = min(n, -(-(a + slot_s + int(math.ceil(tau_s))) // ps)) - 1  # last slot of H
        if k0 >= n:
            break
        h = slice(k0, kl + 1)  # plan slots of the delivery horizon
        bnd = slice(k0, kl + 2)  # boundaries k0−1 … kl (index j+1)
        start = schedule.start + timedelta(seconds=a)
        if outage[h].any() or not bats:
            out.append(FlexSlot(start, slot_s, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
            continue
        later = np.arange(k0, kl + 1) > own_last
        up_kw_b = dn_kw_b = 0.0
        up_wh = dn_wh = 0.0
        f_dn = 0.0
        for b, w, m_up, m_dn, pw_up, pw_dn in rows:
            e_up = b.eta_discharge * b.capacity_wh * max(float(m_up[bnd].min()), 0.0)
            f_b = 1.0 / b.eta_discharge if np.any(w[h] > 0) else b.eta_charge
            f_dn = max(f_dn, f_b)
            e_dn = b.capacity_wh * max(float(m_dn[bnd].min()), 0.0) / f_b
            up_wh += e_up
            dn_wh += e_dn
            up_kw_b += min(float(pw_up[h].min()), e_up / hours)
            dn_kw_b += min(float(pw_dn[h].min()), e_dn / hours)
        eta_d_min = min(b.eta_discharge for b in bats)
        up_wh = min(up_wh, eta_d_min * _award_bound(room_up, need_up, own_last, k0, kl + 1))
        dn_wh = min(dn_wh, _award_bound(room_dn, need_dn, own_last, k0, kl + 1) / f_dn)
        up_wh, dn_wh = max(up_wh, 0.0), max(dn_wh, 0.0)
        held_up = np.where(later, a_up[h], 0.0)
        held_dn = np.where(later, a_dn[h], 0.0)
        uw = min(up_kw_b, float((site_up_w[h] - held_up).min()), float((grid_up[h] - held_up).min()),
                 up_wh / hours)
        dw = min(dn_kw_b, float((site_dn_w[h] - held_dn).min()), float((grid_dn[h] - held_dn).min()),
                 dn_wh / hours)
        uk, dk = max(uw, 0.0) / 1000, max(dw, 0.0) / 1000
        ue, de = up_wh / 1000, dn_wh / 1000
        out.append(FlexSlot(start, slot_s, uk, dk, ue, de,
                            3600 * ue / uk if uk > 0 else 0.0, 3600 * de / dk if dk > 0 else 0.0))
    return out
