"""Step 0 and 1 of fleet planning: the homes' caps and the aggregate virtual-battery problem.

0. **Recovery** (:func:`recovery`): homes that start below their floor charge as fast as
   their caps allow until they reach it, ``r[h,t]`` [W]. This is fixed: in the aggregate it
   is extra load, its energy ``η_c·Σ r·dt`` is credited to the virtual battery's soc0 (it only
   lifts those homes to their floor, i.e. adds no usable margin), and recovering homes add
   no discharge capacity — so the aggregate cannot "cover" one home's reserve with another's.
1. **Aggregate LP** (:func:`aggregate_problem`): all batteries as one virtual battery
   (capacities summed; SoC window and floor as capacity-weighted means; efficiencies
   capacity-weighted) with per-slot power limits that already respect every home's own
   meter limits, ``P_c[t] = Σ_h min(P_c,h, max(0, I_h − load_h[t] + pv_h[t])) − Σ_h r[h,t]``
   and ``P_d[t] = Σ_{h not recovering} min(P_d,h, max(0, E_h + load_h[t] − pv_h[t]))``; PV,
   load and the feeder limits are summed / taken as the site grid. EV sessions sharing a
   window are one flexible load (:func:`ev_groups`) within the meter headroom
   :func:`home_caps` hands out.

Per-home arrays are ``(H, n)`` [W]; homes by row, slots by column.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..inputs import BatteryParams, EvSession, Problem
from .problem import TOL, FleetProblem, ev_home_rows

__all__ = ["aggregate_problem", "ev_groups", "home_caps", "meter_caps", "recovery"]


def meter_caps(a: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-home, per-slot charge and discharge caps [W] from battery and meter limits."""
    net = a["load_w"] - a["pv_w"]
    cap_c = np.minimum(a["max_charge_w"][:, None], np.clip(a["home_import_limit_w"][:, None] - net, 0, None))
    cap_d = np.minimum(a["max_discharge_w"][:, None], np.clip(a["home_export_limit_w"][:, None] + net, 0, None))
    return cap_c, cap_d


def recovery(a: dict[str, np.ndarray], cap_c: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Forced recovery of homes that start below their floor: ``(r, recovering)``.

    ``r[h,t]`` [W] charges home ``h`` as fast as its caps allow until its SoC first reaches
    its floor; ``recovering[h,t]`` is true in the slots before that (no discharge there).
    """
    H, n = cap_c.shape
    cap, etac, floor = a["capacity_wh"], a["eta_charge"], a["floor"]
    r = np.zeros((H, n))
    rec = np.zeros((H, n), bool)
    s = a["soc0"].copy()
    active = s < floor[:, 0] - TOL
    for t in range(n):
        if not active.any():
            break
        need = np.clip((floor[:, t] - s) * cap / (etac * dt), 0, None)
        active &= need > 0
        rec[:, t] = active
        r[:, t] = np.where(active, np.minimum(need, cap_c[:, t]), 0.0)
        s = s + r[:, t] * etac * dt / cap
    return r, rec


def home_caps(fp: FleetProblem, a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Everything the aggregate and the disaggregation share, per home and slot [W].

    Meter headroom is handed out in priority order: recovery charging ``r`` first, then
    each EV session in its window (``ev_cap[s,t] = min(max_w, headroom left)``, ``(S, n)``,
    0 outside ``[arrival, departure)``), then battery charging
    ``cap_c = min(P_c, headroom − EV reserve)``. Reserving the EV's share for its whole
    window keeps every aggregate plan disaggregable (conservative for the battery while a
    car is plugged in). ``cap_d`` ignores EV load (also conservative).
    """
    dt = fp.horizon.dt_h
    H, n = fp.n_homes, fp.horizon.n
    cap_c0, cap_d = meter_caps(a)
    r, recovering = recovery(a, cap_c0, dt)
    room = np.clip(a["home_import_limit_w"][:, None] - (a["load_w"] - a["pv_w"]), 0, None) - r
    eh = ev_home_rows(fp)
    ev_cap = np.zeros((len(fp.evs), n))
    for k, s in enumerate(fp.evs):
        lo, hi = max(0, int(s.arrival_slot)), min(n, int(s.departure_slot))
        if hi <= lo:
            continue
        c = np.full(hi - lo, max(float(s.max_w), 0.0))
        if eh[k] >= 0:
            c = np.minimum(c, np.clip(room[eh[k], lo:hi], 0, None))
            room[eh[k], lo:hi] -= c
        ev_cap[k, lo:hi] = c
    cap_c = np.minimum(a["max_charge_w"][:, None], np.clip(room + r, 0, None))
    return {"cap_c": cap_c, "cap_d": cap_d, "r": r, "recovering": recovering, "ev_cap": ev_cap, "ev_home": eh}


def ev_groups(fp: FleetProblem, ev_cap: np.ndarray, solo: frozenset[int] = frozenset()) -> tuple[list[EvSession], np.ndarray]:
    """EV sessions of the aggregate LP: sessions sharing a window ``[arrival, departure)``
    become one flexible load (energy summed, ``max_w = Σ_s min_t ev_cap[s,t]``, no minimum
    power); sessions in ``solo`` stay on their own. Returns the sessions and each input
    session's group index."""
    n = fp.horizon.n
    keys: dict[tuple, int] = {}
    energy: list[float] = []
    pmax: list[float] = []
    win: list[tuple[int, int]] = []
    of = np.full(len(fp.evs), -1, int)
    for k, s in enumerate(fp.evs):
        lo, hi = max(0, int(s.arrival_slot)), min(n, int(s.departure_slot))
        if hi <= lo or s.energy_wh <= 0:
            continue
        key = (lo, hi, k if k in solo else -1)
        g = keys.setdefault(key, len(keys))
        if g == len(energy):
            energy.append(0.0)
            pmax.append(0.0)
            win.append((lo, hi))
        energy[g] += float(s.energy_wh)
        pmax[g] += float(ev_cap[k, lo:hi].min())
        of[k] = g
    groups = [EvSession(f"fleet-ev{g:03d}", lo, hi, energy[g], 0.0, pmax[g]) for g, (lo, hi) in enumerate(win)]
    return groups, of


def aggregate_problem(fp: FleetProblem, a: dict[str, np.ndarray] | None = None,
                      caps: dict[str, np.ndarray] | None = None, solo: frozenset[int] = frozenset()) -> Problem:
    """The single virtual-battery site problem of step 1 (see :mod:`optimizer.fleet`).

    EV sessions sharing a window are one flexible load each (:func:`ev_groups`). VPP
    commitments apply to the virtual battery as in the site model; since the recovery
    charging ``R[t] = Σ_h r[h,t]`` is outside the virtual battery's power, a dispatch ``D``
    of the homes' summed battery power is ``D + R`` for the virtual battery.
    """
    a = a or fp.arrays()
    caps = caps or home_caps(fp, a)
    cap = a["capacity_wh"]
    C = float(cap.sum())
    w = cap / C
    cap_c, cap_d, r, recovering = caps["cap_c"], caps["cap_d"], caps["r"], caps["recovering"]
    dt = fp.horizon.dt_h
    # recovery charging is a fixed load; its energy is credited to the virtual battery up
    # front, where it only raises recovering homes to their floor (zero usable margin)
    credit = float((r * (a["eta_charge"] * dt)[:, None]).sum())  # [Wh]
    bat = BatteryParams(
        id="fleet",
        capacity_wh=C,
        max_charge_w=(cap_c - r).sum(axis=0),
        max_discharge_w=np.where(recovering, 0.0, cap_d).sum(axis=0),
        eta_charge=float(w @ a["eta_charge"]),
        eta_discharge=float(w @ a["eta_discharge"]),
        soc_min=float(w @ a["soc_min"]),
        soc_max=float(w @ a["soc_max"]),
        soc0=float((cap @ a["soc0"] + credit) / C),
        soc_end=fp.soc_end,
        degradation_cost_per_kwh=fp.degradation_cost_per_kwh,
        floor=w @ a["floor"],
    )
    vpp = fp.vpp
    if vpp is not None and vpp.dispatch_w is not None:
        n = fp.horizon.n
        disp = np.broadcast_to(np.asarray(vpp.dispatch_w, float), (n,)) + r.sum(axis=0)
        vpp = dataclasses.replace(vpp, dispatch_w=disp)
    return Problem(
        horizon=fp.horizon,
        pv_w=a["pv_w"].sum(axis=0),
        load_w=a["load_w"].sum(axis=0) + r.sum(axis=0),
        batteries=(bat,),
        evs=tuple(ev_groups(fp, caps["ev_cap"], solo)[0]),
        grid=fp.feeder,
        prices=fp.prices,
        vpp=vpp,
        offers=fp.offers,
        options=fp.options,
    )
