"""Fleet planning: many homes (PV + battery + load) behind one feeder, in seconds.

Decomposition
-------------
0. **Recovery** (:func:`_recovery`): homes that start below their floor charge as fast as
   their caps allow until they reach it, ``r[h,t]`` [W]. This is fixed: in the aggregate it
   is extra load, its energy ``η_c·Σ r·dt`` is credited to the virtual battery's soc0 (it only
   lifts those homes to their floor, i.e. adds no usable margin), and recovering homes add
   no discharge capacity — so the aggregate cannot "cover" one home's reserve with another's.
1. **Aggregate LP** (:func:`aggregate_problem` → :func:`optimizer.solve.solve`): all
   batteries as one virtual battery (capacities summed; SoC window and floor as
   capacity-weighted means; efficiencies capacity-weighted) with per-slot power limits that
   already respect every home's own meter limits,
   ``P_c[t] = Σ_h min(P_c,h, max(0, I_h − load_h[t] + pv_h[t])) − Σ_h r[h,t]`` and
   ``P_d[t] = Σ_{h not recovering} min(P_d,h, max(0, E_h + load_h[t] − pv_h[t]))``; PV,
   load and the feeder limits are summed / taken as the site grid. The objective is the
   community bill at the feeder (buy · import − sell · export, CO2 price, degradation);
   ``soc_end`` applies to the fleet-average SoC.
   *EV sessions* (:func:`_caps`, :func:`_ev_groups`): each home's meter headroom goes to
   recovery first, then to its plugged-in cars (``ev_cap[s,t] = min(max_w, headroom)``
   reserved for the whole session window), then to its battery (``P_c`` above is taken
   after that reserve). Sessions sharing a window are one flexible load of the aggregate
   LP (energy summed, power ≤ Σ_s min_t ev_cap); a group the disaggregation cannot split
   is re-planned session by session (exact; one more solve).
   *VPP commitments* (``FleetProblem.vpp``) are the site model's constraints
   (:func:`optimizer.model.add_vpp`) on the virtual battery: its power headroom sums the
   homes' caps, its energy above the (capacity-weighted) floor is the homes' summed energy
   above theirs, and a dispatch ``D`` of the homes' battery power is ``D + Σ_h r`` for it.
2. **Disaggregation** (:func:`disaggregate`, vectorised over homes, one pass over slots):
   recovering homes follow ``r`` and homes that a rising (storm) floor would leave behind
   charge just enough to stay on it; the aggregate battery power of slot ``t`` is
   water-filled over the other homes in proportion to their
   energy above the floor (discharge) or room below ``soc_max`` (charge), each capped by its
   power limit, meter headroom and what its SoC allows in one slot. Each home's SoC is then
   stepped with its own efficiencies, so per-home floors and windows hold by construction.
   Splitting discharge by energy above the floor keeps every home's share of an up award
   (and charging by room below ``soc_max`` its share of a down award). Each EV group's
   power is split over its sessions (:func:`disaggregate_evs`: least laxity first, then
   longest remaining charging time).
3. **Repair and validation**: surplus beyond a home's export limit or the feeder export
   limit is curtailed (proportionally to PV output); every home's power, SoC, floor and
   meter limits and the feeder limits are re-checked, and the differences to the aggregate
   plan are reported (:class:`FleetPlan` ``violations``, ``tracking_error_w``). Awards are
   re-checked on the homes (:func:`_check_vpp`): summed energy above the floors ≥ award ×
   duration at the start and end of each award slot, summed power headroom ≥ award, the
   feeder limit leaves room for it, and Σ_h battery power = dispatch; a miss is a
   violation. EV energy short at departure is ``ev_unmet_wh`` (a warning if more than the
   aggregate's).

Per-home arrays are ``(H, n)``: homes by row, slots by column; units W, fraction, Wh.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .inputs import BatteryParams, EvSession, GridParams, Horizon, OfferParams, Prices, Problem, SolveOptions, VppCommitments
from .schedule import Schedule
from .solve import solve

__all__ = ["FleetProblem", "FleetPlan", "plan_fleet", "aggregate_problem", "disaggregate", "disaggregate_evs"]

_TOL = 1e-6
_CUT = "homes cannot deliver the aggregate offer: "


@dataclass
class FleetProblem:
    """Homes behind one feeder, as arrays.

    Parameters
    ----------
    horizon : Horizon
    pv_w, load_w : ndarray (H, n)
        Forecasts per home [W] (cleaned: NaN/negative → 0).
    capacity_wh, max_charge_w, max_discharge_w : ndarray (H,)
        Battery size [Wh] and AC power limits [W].
    soc0 : ndarray (H,)
        Measured SoC [fraction]; may be below the floor (that home recovers first).
    floor : ndarray (H,) or (H, n)
        Reserve floor [fraction] (raised by storm mode); held outside outages.
    home_import_limit_w, home_export_limit_w : ndarray (H,) or float
        Each home's meter limits [W].
    feeder : GridParams
        Shared feeder import / export limits [W].
    eta_charge, eta_discharge, soc_min, soc_max : ndarray (H,) or float
    soc_end : float or None
        Minimum fleet-average SoC at the end [fraction].
    evs : sequence of EvSession
        EV sessions (``charger_id`` names the session in the plan; several sessions may
        share a charger if they do not overlap).
    ev_home : sequence of int
        Row of each session's home (its EV draws through that home's meter); ``-1`` = a
        charger not behind any planned home's meter (on the feeder directly).
    vpp : VppCommitments or None
        Site-level aggregator awards and dispatch (see :func:`optimizer.model.add_vpp`),
        held by the fleet as a whole: Σ_h battery power follows ``dispatch_w``; the homes'
        summed headroom covers ``award_up_w`` / ``award_down_w`` for ``duration_s``.
    offers : OfferParams or None
        Aggregator offers to size (see :func:`optimizer.model.add_offers`): sized by the
        aggregate LP on the virtual battery, then checked on the homes as awards are and cut
        per offer slot to what the homes can deliver (:func:`_check_offers`).
    """

    horizon: Horizon
    pv_w: np.ndarray
    load_w: np.ndarray
    capacity_wh: np.ndarray
    max_charge_w: np.ndarray
    max_discharge_w: np.ndarray
    soc0: np.ndarray
    floor: np.ndarray | float
    home_import_limit_w: np.ndarray | float
    home_export_limit_w: np.ndarray | float
    feeder: GridParams
    prices: Prices
    eta_charge: np.ndarray | float = 0.95
    eta_discharge: np.ndarray | float = 0.95
    soc_min: np.ndarray | float = 0.1
    soc_max: np.ndarray | float = 0.95
    soc_end: float | None = None
    degradation_cost_per_kwh: float = 0.0
    options: SolveOptions = field(default_factory=SolveOptions)
    evs: tuple[EvSession, ...] | list[EvSession] = ()
    ev_home: np.ndarray | list[int] | tuple[int, ...] = ()
    vpp: VppCommitments | None = None
    offers: OfferParams | None = None

    @property
    def n_homes(self) -> int:
        return int(np.shape(self.pv_w)[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """Every per-home parameter broadcast: (H,) or (H, n) float arrays."""
        H, n = self.n_homes, self.horizon.n
        a = {k: np.broadcast_to(np.asarray(getattr(self, k), float), (H,)).copy() for k in (
            "capacity_wh", "max_charge_w", "max_discharge_w", "soc0", "home_import_limit_w",
            "home_export_limit_w", "eta_charge", "eta_discharge", "soc_min", "soc_max")}
        fl = np.asarray(self.floor, float)
        fl = np.broadcast_to(fl[:, None] if fl.ndim == 1 else fl, (H, n))
        if np.any(fl > a["soc_max"][:, None]):
            warnings.warn("fleet floor above soc_max: held at soc_max", stacklevel=3)
        a["floor"] = np.clip(fl, a["soc_min"][:, None], a["soc_max"][:, None])
        for k in ("pv_w", "load_w"):
            x = np.array(getattr(self, k), float, copy=True).reshape(H, n)
            bad = ~np.isfinite(x) | (x < 0)
            if bad.any():
                warnings.warn(f"fleet {k}: {int(bad.sum())} NaN/negative values set to 0", stacklevel=3)
                x[bad] = 0.0
            a[k] = x
        return a


@dataclass
class FleetPlan:
    """Per-home plan ``(H, n)`` plus the feeder view and the checks.

    ``battery_w`` (> 0 discharge), ``soc`` (after the slot), ``curtail_w``, ``grid_w``
    (home meter incl. its EVs, > 0 import), ``unserved_w``; ``ev_w`` ``(S, n)`` per EV
    session and ``ev_unmet_wh`` ``(S,)`` its energy short at departure;
    ``feeder_import_w`` / ``feeder_export_w`` (n,); ``cost`` per slot at the feeder;
    ``aggregate`` is the aggregate LP's schedule; ``tracking_error_w`` the largest
    |Σ_h battery − aggregate battery| per slot; ``headroom_up_wh`` / ``headroom_down_wh``
    (n,) the homes' summed deliverable energy in each slot (the smaller of slot start and
    end): ``Σ_h η_d·C_h·(soc − floor)⁺`` and ``Σ_h C_h/η_c·(soc_max − soc)⁺`` [Wh];
    ``headroom_up_w`` / ``headroom_down_w`` (n,) the summed power headroom [W];
    ``violations`` lists broken limits and undeliverable VPP commitments in words (empty =
    every home, the feeder and every award are within limits); an award the aggregate
    already reports short (``aggregate.award_shortfall_up_w`` / ``_down_w``, raised to what
    the homes can deliver in those slots) is a warning, not a violation; ``timings`` in s.
    """

    battery_w: np.ndarray
    soc: np.ndarray
    curtail_w: np.ndarray
    grid_w: np.ndarray
    unserved_w: np.ndarray
    feeder_import_w: np.ndarray
    feeder_export_w: np.ndarray
    cost: np.ndarray
    aggregate: Schedule
    tracking_error_w: float
    violations: list[str]
    warnings: list[str]
    timings: dict[str, float]
    ev_w: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    ev_unmet_wh: np.ndarray = field(default_factory=lambda: np.zeros(0))
    headroom_up_wh: np.ndarray | None = None
    headroom_down_wh: np.ndarray | None = None
    headroom_up_w: np.ndarray | None = None
    headroom_down_w: np.ndarray | None = None

    @property
    def total_cost(self) -> float:
        return float(self.cost.sum())


def _meter_caps(a: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-home, per-slot charge and discharge caps [W] from battery and meter limits."""
    net = a["load_w"] - a["pv_w"]
    cap_c = np.minimum(a["max_charge_w"][:, None], np.clip(a["home_import_limit_w"][:, None] - net, 0, None))
    cap_d = np.minimum(a["max_discharge_w"][:, None], np.clip(a["home_export_limit_w"][:, None] + net, 0, None))
    return cap_c, cap_d


def _recovery(a: dict[str, np.ndarray], cap_c: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Forced recovery of homes that start below their floor: ``(r, recovering)``.

    ``r[h,t]`` [W] charges home ``h`` as fast as its caps allow until its SoC first reaches
    its floor; ``recovering[h,t]`` is true in the slots before that (no discharge there).
    """
    H, n = cap_c.shape
    cap, etac, floor = a["capacity_wh"], a["eta_charge"], a["floor"]
    r = np.zeros((H, n))
    rec = np.zeros((H, n), bool)
    s = a["soc0"].copy()
    active = s < floor[:, 0] - _TOL
    for t in range(n):
        if not active.any():
            break
        need = np.clip((floor[:, t] - s) * cap / (etac * dt), 0, None)
        active &= need > 0
        rec[:, t] = active
        r[:, t] = np.where(active, np.minimum(need, cap_c[:, t]), 0.0)
        s = s + r[:, t] * etac * dt / cap
    return r, rec


def _ev_home(fp: FleetProblem) -> np.ndarray:
    """Home row of each EV session (``-1``: on the feeder), validated."""
    eh = np.asarray(fp.ev_home if len(fp.ev_home) else [-1] * len(fp.evs), int).ravel()
    if eh.size != len(fp.evs):
        raise ValueError(f"ev_home has {eh.size} rows for {len(fp.evs)} EV sessions")
    if np.any(eh >= fp.n_homes) or np.any(eh < -1):
        raise ValueError("ev_home: a row outside the fleet")
    return eh


def _caps(fp: FleetProblem, a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
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
    cap_c0, cap_d = _meter_caps(a)
    r, recovering = _recovery(a, cap_c0, dt)
    room = np.clip(a["home_import_limit_w"][:, None] - (a["load_w"] - a["pv_w"]), 0, None) - r
    eh = _ev_home(fp)
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


def _ev_groups(fp: FleetProblem, ev_cap: np.ndarray, solo: frozenset[int] = frozenset()) -> tuple[list[EvSession], np.ndarray]:
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
    """The single virtual-battery site problem of step 1 (see module docstring).

    EV sessions sharing a window are one flexible load each (:func:`_ev_groups`). VPP
    commitments apply to the virtual battery as in the site model; since the recovery
    charging ``R[t] = Σ_h r[h,t]`` is outside the virtual battery's power, a dispatch ``D``
    of the homes' summed battery power is ``D + R`` for the virtual battery.
    """
    a = a or fp.arrays()
    caps = caps or _caps(fp, a)
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
        evs=tuple(_ev_groups(fp, caps["ev_cap"], solo)[0]),
        grid=fp.feeder,
        prices=fp.prices,
        vpp=vpp,
        offers=fp.offers,
        options=fp.options,
    )


def _waterfill(target: float, weight: np.ndarray, cap: np.ndarray, iters: int = 30) -> np.ndarray:
    """Split ``target`` ≥ 0 over homes ∝ ``weight``, each ≤ ``cap``; returns the shares."""
    out = np.zeros_like(cap)
    if target <= 0:
        return out
    if cap.sum() <= target:
        return cap.copy()
    free = cap > 0
    rest = target
    for _ in range(iters):
        wsum = weight[free].sum()
        if rest <= 1e-9 or not free.any():
            break
        if wsum <= 0:
            share = np.where(free, cap - out, 0.0)
            share *= rest / share.sum()
        else:
            share = np.where(free, rest * weight / wsum, 0.0)
        new = np.minimum(out + share, cap)
        rest -= (new - out).sum()
        out = new
        free = out < cap - 1e-9
    return out


def disaggregate(fp: FleetProblem, agg_battery_w: np.ndarray, a: dict[str, np.ndarray] | None = None,
                 caps: dict[str, np.ndarray] | None = None):
    """Step 2: per-home battery power ``(H, n)`` [W] and SoC following the aggregate power
    ``agg_battery_w`` (n,) [W, > 0 discharge]; returns ``(battery_w, soc)``."""
    a = a or fp.arrays()
    caps = caps or _caps(fp, a)
    H, n = fp.n_homes, fp.horizon.n
    dt = fp.horizon.dt_h
    cap, etac, etad, smax = a["capacity_wh"], a["eta_charge"], a["eta_discharge"], a["soc_max"]
    floor = a["floor"]
    cap_c, cap_d, r = caps["cap_c"], caps["cap_d"], caps["r"]
    bw = np.zeros((H, n))
    soc = np.zeros((H, n))
    s = a["soc0"].copy()
    for t in range(n):
        fl = floor[:, t]
        # what each home can do this slot without leaving its window / crossing its floor
        c_max = np.minimum(cap_c[:, t], np.clip((smax - s) * cap / (etac * dt), 0, None))
        d_max = np.minimum(cap_d[:, t], np.clip((s - fl) * cap * etad / dt, 0, None))
        # recovery first (a fixed load in the aggregate plan, so not part of its battery
        # power), then any home a rising (storm) floor would leave behind
        need = np.clip((fl - s) * cap / (etac * dt), 0, None)
        forced = np.minimum(np.maximum(r[:, t], need), c_max)
        # > 0: fleet discharge wanted from the others
        target = float(agg_battery_w[t]) + float((forced - np.minimum(r[:, t], c_max)).sum())
        p = -forced
        if target > 0:
            p = p + _waterfill(target, np.clip(s - fl, 0, None) * cap, d_max)
        elif target < 0:
            room = c_max - forced
            p = p - _waterfill(-target, np.clip(smax - s, 0, None) * cap, room)
        s = s + dt / cap * (np.where(p < 0, -p * etac, 0.0) - np.where(p > 0, p / etad, 0.0))
        bw[:, t] = p
        soc[:, t] = s
    return bw, soc


def disaggregate_evs(fp: FleetProblem, group_w: np.ndarray, group_of: np.ndarray,
                     ev_cap: np.ndarray) -> np.ndarray:
    """Split each aggregate EV group's power ``group_w`` ``(G, n)`` [W] over its sessions:
    ``(S, n)`` [W].

    Per slot, each session first gets what it can no longer postpone (its remaining need
    minus what its caps allow in its later slots: least laxity first), then the rest of the
    group's power goes to the sessions with the longest remaining charging time
    (remaining need / cap) first; every session stays within ``ev_cap`` and never gets more
    than its need. Sessions of one group share a
    departure, so this is earliest-deadline-first within the group.
    """
    S, n = ev_cap.shape
    dt = fp.horizon.dt_h
    out = np.zeros((S, n))
    if S == 0:
        return out
    rem = np.array([max(float(s.energy_wh), 0.0) for s in fp.evs])
    # energy each session can still take after slot t [Wh]
    later = np.concatenate([np.cumsum(ev_cap[:, ::-1], axis=1)[:, ::-1][:, 1:], np.zeros((S, 1))], axis=1) * dt
    for g in range(group_w.shape[0]):
        idx = np.flatnonzero(group_of == g)
        if idx.size == 0:
            continue
        lo = min(int(fp.evs[k].arrival_slot) for k in idx)
        hi = max(int(fp.evs[k].departure_slot) for k in idx)
        r_g = rem[idx].copy()
        for t in range(max(lo, 0), min(hi, n)):
            p_t = max(float(group_w[g, t]), 0.0)
            if p_t <= 1e-9:
                continue
            c = np.minimum(ev_cap[idx, t], r_g / dt)
            must = np.minimum(np.clip(r_g - later[idx, t], 0, None) / dt, c)
            must *= min(1.0, p_t / must.sum()) if must.sum() > 0 else 1.0
            # the rest: longest remaining charging time first (keeps the group splittable)
            x = must.copy()
            left = p_t - must.sum()
            t_left = np.divide(r_g - must * dt, ev_cap[idx, t], out=np.zeros(idx.size), where=ev_cap[idx, t] > 0)
            for j in np.argsort(-t_left, kind="stable"):
                if left <= 1e-9:
                    break
                add = min(c[j] - x[j], left)
                x[j] += add
                left -= add
            out[idx, t] = x
            r_g = np.clip(r_g - x * dt, 0, None)
    return out


def plan_fleet(fp: FleetProblem) -> FleetPlan:
    """Plan every home behind the feeder (aggregate LP → disaggregation → repair → checks).

    EV sessions are planned in window groups; when the disaggregation leaves a session short
    although its group got its energy, that group's sessions are planned one by one in a
    second (exact, larger) solve.
    """
    t0 = time.perf_counter()
    if fp.vpp is not None:  # awards as (n,) arrays, dispatch NaN = none (as the site LP sees them)
        n = fp.horizon.n
        fp = dataclasses.replace(fp, vpp=Problem(fp.horizon, np.zeros(n), np.zeros(n), vpp=fp.vpp).cleaned().vpp)
    a = fp.arrays()
    caps = _caps(fp, a)
    dt = fp.horizon.dt_h
    need = np.array([max(float(s.energy_wh), 0.0) for s in fp.evs])
    solo: frozenset[int] = frozenset()
    for _ in range(2):
        agg = solve(aggregate_problem(fp, a, caps, solo))
        groups, group_of = _ev_groups(fp, caps["ev_cap"], solo)
        gw = np.zeros((len(groups), fp.horizon.n))
        for g, grp in enumerate(groups):
            gw[g] = agg.ev_w.get(grp.charger_id, 0.0)
        ev = disaggregate_evs(fp, gw, group_of, caps["ev_cap"])
        short = need - ev.sum(axis=1) * dt
        g_unmet = np.array([agg.ev_unmet_wh.get(g.charger_id, 0.0) for g in groups])
        # a session short while its group got all its energy: the group could not be
        # split; plan each of that group's sessions on its own (exact) in one re-solve
        bad = {int(group_of[k]) for k in np.flatnonzero(short > 1.0)
               if group_of[k] >= 0 and g_unmet[group_of[k]] < 1.0 and k not in solo}
        if not bad:
            break
        solo = solo | frozenset(int(k) for k in np.flatnonzero(np.isin(group_of, list(bad))))
    t1 = time.perf_counter()
    bw, soc = disaggregate(fp, agg.battery_w["fleet"], a, caps)
    t2 = time.perf_counter()

    eh = caps["ev_home"]
    ev_h = np.zeros_like(bw)
    if len(fp.evs):
        np.add.at(ev_h, eh[eh >= 0], ev[eh >= 0])
    ev_feeder = ev[eh < 0].sum(axis=0) if len(fp.evs) else 0.0
    pv, load = a["pv_w"], a["load_w"] + ev_h
    curt = np.zeros_like(pv)
    grid = load - pv - bw  # home meter before curtailment, > 0 import
    # home export limit: curtail the excess
    over = np.clip(-grid - a["home_export_limit_w"][:, None], 0, None)
    curt += np.minimum(over, pv)
    if fp.offers is not None:  # the aggregate may curtail to hold feeder room for up offers:
        # the homes curtail as much, in proportion to their PV
        tot = pv.sum(axis=0)
        frac = np.divide(np.asarray(agg.pv_curtail_w, float), tot, out=np.zeros_like(tot), where=tot > 0)
        curt = np.maximum(curt, pv * np.clip(frac, 0.0, 1.0))
    grid = load - pv + curt - bw
    # feeder export limit: curtail proportionally to remaining PV
    feeder = grid.sum(axis=0) + ev_feeder
    excess = np.clip(-feeder - fp.feeder.export_limit_w, 0, None)
    if excess.any():
        avail = pv - curt
        tot = avail.sum(axis=0)
        frac = np.divide(excess, tot, out=np.zeros_like(excess), where=tot > 0)
        curt += avail * np.minimum(frac, 1.0)
        grid = load - pv + curt - bw
    unserved = np.clip(grid - a["home_import_limit_w"][:, None], 0, None)
    grid = grid - unserved
    feeder = grid.sum(axis=0) + ev_feeder
    imp, exp = np.clip(feeder, 0, None), np.clip(-feeder, 0, None)
    p = fp.prices
    buy = np.asarray(p.buy, float) + p.co2_price_per_kg * np.asarray(p.co2_kg_per_kwh, float)
    cost = dt / 1000 * (buy * imp - np.asarray(p.sell, float) * exp)
    cost = cost + fp.degradation_cost_per_kwh * dt / 1000 * np.abs(bw).sum(axis=0)

    viol = _check(fp, a, bw, soc, grid, imp, exp)
    head = _headroom(fp, a, caps, bw, soc)
    agg = _homes_award_shortfall(fp, agg, imp, exp, head)
    viol += _check_vpp(fp, agg, bw, imp, exp, head)
    if fp.offers is not None and agg.offers:
        # offers are sized on the expected trajectory (the aggregate SoC carries the expected
        # activation): the homes' energy is checked on it too; power as planned
        for _ in range(3):  # cuts change the expected activation: re-check until none
            head_o = _headroom(fp, a, caps, bw, soc + _activation_offset(fp, a, agg))
            before = agg
            agg = _check_offers(fp, agg, imp, exp, head_o)
            if agg is before:
                break
        viol += [v.replace("award", "offer") for v in _check_vpp(_offers_as_awards(fp, agg), dataclasses.replace(
            agg, award_shortfall_up_w=None, award_shortfall_down_w=None), bw, imp, exp, head_o)]
    ev_unmet = np.clip(need - ev.sum(axis=1) * dt, 0, None) if len(fp.evs) else np.zeros(0)
    recovery_w = caps["r"].sum(axis=0)
    track = float(np.abs(bw.sum(axis=0) + recovery_w - agg.battery_w["fleet"]).max())
    warn = list(agg.warnings)
    if unserved.max() > 1.0:
        warn.append(f"{int((unserved.max(axis=1) > 1).sum())} homes cannot serve their load within their meter limit")
    if track > 1.0:
        warn.append(f"homes track the aggregate battery plan within {track:.0f} W")
    agg_unmet = sum(agg.ev_unmet_wh.values())
    if ev_unmet.sum() > agg_unmet + 1.0:
        warn.append(f"{int((ev_unmet > 1.0).sum())} EV sessions short by {(ev_unmet.sum() - agg_unmet) / 1000:.1f} kWh "
                    "more than the aggregate plan")
    t3 = time.perf_counter()
    return FleetPlan(
        battery_w=bw, soc=soc, curtail_w=curt, grid_w=grid, unserved_w=unserved,
        feeder_import_w=imp, feeder_export_w=exp, cost=cost, aggregate=agg,
        tracking_error_w=track, violations=viol, warnings=warn,
        timings={"aggregate_s": t1 - t0, "disaggregate_s": t2 - t1, "check_s": t3 - t2, "total_s": t3 - t0},
        ev_w=ev, ev_unmet_wh=ev_unmet,
        headroom_up_wh=head["up_wh"], headroom_down_wh=head["down_wh"],
        headroom_up_w=head["up_w"], headroom_down_w=head["down_w"],
    )


def _headroom(fp, a, caps, bw, soc) -> dict[str, np.ndarray]:
    """The homes' summed VPP headroom per slot (see :class:`FleetPlan`): energy [Wh] at the
    smaller of slot start and end, power [W] from the caps and the planned battery power
    (a home below its floor offers no discharge, only less charging)."""
    cap, fl, smax = a["capacity_wh"][:, None], a["floor"], a["soc_max"][:, None]
    prev = np.concatenate([a["soc0"][:, None], soc[:, :-1]], axis=1)

    def up(x):
        return (a["eta_discharge"][:, None] * cap * np.clip(x - fl, 0, None)).sum(axis=0)

    def dn(x):
        return (cap / a["eta_charge"][:, None] * np.clip(smax - x, 0, None)).sum(axis=0)

    below = soc < fl - _TOL
    return {
        "up_wh": np.minimum(up(prev), up(soc)),
        "down_wh": np.minimum(dn(prev), dn(soc)),
        "up_w": (np.where(caps["recovering"] | below, 0.0, caps["cap_d"]) - bw).sum(axis=0),
        "down_w": (caps["cap_c"] + bw).sum(axis=0),
    }


def _homes_award_shortfall(fp, agg: Schedule, imp, exp, head) -> Schedule:
    """Where the aggregate already reports an award shortfall (award at risk), the homes'
    own shortfall counts: ``A − min(headroom_w, headroom_wh/τ, feeder room)`` [W] if larger
    (the aggregate, pushed to its limits, may plan what the homes cannot track, e.g. homes
    full before the virtual battery). Slots the aggregate keeps in full are left to
    :func:`_check_vpp` (a miss there is a violation)."""
    v = fp.vpp
    if v is None or agg.award_shortfall_up_w is None:
        return agg
    n, tau = fp.horizon.n, v.duration_s / 3600.0
    g = exp - imp
    out, grew = {}, []
    for side, award, short, kept in (
        ("up", v.award_up_w, agg.award_shortfall_up_w,
         np.minimum(np.minimum(head["up_w"], head["up_wh"] / tau), fp.feeder.export_limit_w - g)),
        ("down", v.award_down_w, agg.award_shortfall_down_w,
         np.minimum(np.minimum(head["down_w"], head["down_wh"] / tau), fp.feeder.import_limit_w + g)),
    ):
        A = np.nan_to_num(np.broadcast_to(np.asarray(award, float), (n,)), nan=0.0)
        homes = np.clip(A - np.clip(kept, 0.0, None), 0.0, A)
        new = np.where(short > 1.0, np.maximum(short, homes), short)
        if np.any(new > short + 1.0):
            grew.append(f"VPP {side} award at risk: the homes keep up to {(new - short).max() / 1000:.2f} kW less "
                        f"than the aggregate plan")
        out[f"award_shortfall_{side}_w"] = new
    return dataclasses.replace(agg, warnings=list(agg.warnings) + grew, **out)


def _check_vpp(fp, agg: Schedule, bw, imp, exp, head) -> list[str]:
    """Awards the disaggregated plan cannot deliver beyond the aggregate's reported award
    shortfall, and dispatches the homes do not follow (as the site model states them,
    :func:`optimizer.model.add_vpp`)."""
    v = fp.vpp
    if v is None:
        return []
    n = fp.horizon.n
    tau = v.duration_s / 3600.0
    up = np.nan_to_num(np.broadcast_to(np.asarray(v.award_up_w, float), (n,)), nan=0.0)
    dn = np.nan_to_num(np.broadcast_to(np.asarray(v.award_down_w, float), (n,)), nan=0.0)
    # the part the aggregate already reports as not deliverable (its award shortfall, a
    # warning of the aggregate plan) is not the homes' violation
    if agg.award_shortfall_up_w is not None:
        up = np.clip(up - agg.award_shortfall_up_w, 0.0, None)
        dn = np.clip(dn - agg.award_shortfall_down_w, 0.0, None)
    tol_w = 1.0
    out = []

    def slots(mask) -> str:
        idx = np.flatnonzero(mask)
        return ", ".join(str(int(t)) for t in idx[:5]) + (" …" if idx.size > 5 else "")

    bad_up = (up > 0) & ((head["up_wh"] < up * tau - np.maximum(tol_w, 1e-4 * up * tau))
                         | (head["up_w"] < up - tol_w) | (exp - imp + up > fp.feeder.export_limit_w + tol_w))
    if bad_up.any():
        out.append(f"VPP up award not deliverable by the homes in slots {slots(bad_up)}")
    bad_dn = (dn > 0) & ((head["down_wh"] < dn * tau - np.maximum(tol_w, 1e-4 * dn * tau))
                         | (head["down_w"] < dn - tol_w) | (imp - exp + dn > fp.feeder.import_limit_w + tol_w))
    if bad_dn.any():
        out.append(f"VPP down award not deliverable by the homes in slots {slots(bad_dn)}")
    if v.dispatch_w is not None:
        d = np.broadcast_to(np.asarray(v.dispatch_w, float), (n,))
        short = agg.dispatch_shortfall_w if agg.dispatch_shortfall_w is not None else np.zeros(n)
        miss = np.isfinite(d) & (np.abs(bw.sum(axis=0) - d) > np.abs(short) + tol_w)
        if miss.any():
            out.append(f"VPP dispatch not followed by the homes in slots {slots(miss)}")
    return out


def _check(fp, a, bw, soc, grid, imp, exp) -> list[str]:
    out = []
    tol_w = 1.0
    if np.any(bw > a["max_discharge_w"][:, None] + tol_w) or np.any(-bw > a["max_charge_w"][:, None] + tol_w):
        out.append("home battery power limit exceeded")
    if np.any(soc > a["soc_max"][:, None] + _TOL) or np.any(soc < np.minimum(a["soc_min"], a["soc0"])[:, None] - _TOL):
        out.append("home SoC outside its window")
    # a home below its floor may only be there while recovering: SoC never falls there
    prev = np.concatenate([a["soc0"][:, None], soc[:, :-1]], axis=1)
    below = soc < a["floor"] - _TOL
    if np.any(below & (soc < prev - _TOL)):
        out.append("home discharged below its reserve floor")
    if np.any(grid > a["home_import_limit_w"][:, None] + tol_w) or np.any(-grid > a["home_export_limit_w"][:, None] + tol_w):
        out.append("home meter limit exceeded")
    if np.any(imp > fp.feeder.import_limit_w + tol_w) or np.any(exp > fp.feeder.export_limit_w + tol_w):
        out.append("feeder limit exceeded")
    return out


def _activation_offset(fp: FleetProblem, a: dict[str, np.ndarray], agg: Schedule) -> np.ndarray:
    """SoC offset [fraction] (n,) of the aggregate's expected activation of its offers, as its
    SoC balance carries it (:func:`optimizer.model.add_offers`):
    ``Σ_{u≤t} α·dt/C·(η_c·dn[u] − up[u]/η_d)``, the same for every home (capacity-weighted
    efficiencies as in :func:`aggregate_problem`)."""
    o, dt = fp.offers, fp.horizon.dt_h
    C = float(a["capacity_wh"].sum())
    w = a["capacity_wh"] / C
    etac, etad = float(w @ a["eta_charge"]), float(w @ a["eta_discharge"])
    step = o.activation_ratio * dt / C * (etac * agg.offer_down_w - agg.offer_up_w / etad)
    return np.cumsum(step)[None, :]


def _offers_as_awards(fp: FleetProblem, agg: Schedule) -> FleetProblem:
    """``fp`` with the offered ΔkW (``agg.offer_up_w`` / ``offer_down_w``, per plan slot)
    added to the awards the aggregate keeps (award − its shortfall), for
    ``offers.duration_s``: an offer is checked as an award would be (:func:`_check_vpp`)."""
    n = fp.horizon.n
    v = fp.vpp or VppCommitments()
    up = np.nan_to_num(np.broadcast_to(np.asarray(v.award_up_w if v.award_up_w is not None else 0.0, float), (n,)))
    dn = np.nan_to_num(np.broadcast_to(np.asarray(v.award_down_w if v.award_down_w is not None else 0.0, float), (n,)))
    if agg.award_shortfall_up_w is not None:
        up = np.clip(up - agg.award_shortfall_up_w, 0.0, None)
        dn = np.clip(dn - agg.award_shortfall_down_w, 0.0, None)
    return dataclasses.replace(fp, vpp=dataclasses.replace(
        v, award_up_w=up + agg.offer_up_w, award_down_w=dn + agg.offer_down_w,
        duration_s=fp.offers.duration_s, dispatch_w=None))


def _check_offers(fp: FleetProblem, agg: Schedule, imp, exp, head) -> Schedule:
    """Cut the aggregate's offers to what the homes can deliver (as :func:`_check_vpp`
    checks an award): in every plan slot ``t`` of offer slot ``j``, up ≤
    ``min(headroom_up_w, headroom_up_wh/τ, E − (export − import)) − award_up`` and down ≤
    ``min(headroom_down_w, headroom_down_wh/τ, I − (import − export)) − award_down`` [W]
    (``τ = offers.duration_s``; headroom energy counts only each home's energy above its
    own floor, so a delivered offer never takes a home below its floor). A cut offer keeps
    what is left with a reason; revenue, the per-slot offer arrays and the expected
    activation are recomputed."""
    o = fp.offers
    n, k = fp.horizon.n, o.steps(fp.horizon.slot_s)
    tau = o.duration_s / 3600.0
    v = fp.vpp
    g = exp - imp

    def award(x) -> np.ndarray:
        return np.zeros(n) if v is None or x is None else np.nan_to_num(np.broadcast_to(np.asarray(x, float), (n,)))

    room = {}
    for side, hw, hwh, feed, aw in (
        ("up", head["up_w"], head["up_wh"], fp.feeder.export_limit_w - g, award(v and v.award_up_w)),
        ("down", head["down_w"], head["down_wh"], fp.feeder.import_limit_w + g, award(v and v.award_down_w)),
    ):
        parts = np.vstack([hw, hwh / tau, feed]) - aw
        room[side] = (np.clip(parts.min(axis=0), 0.0, None), parts.argmin(axis=0))
    why = {"up": ("power headroom", f"energy above their floors for {o.duration_s / 3600:.2g} h", "feeder limit"),
           "down": ("power headroom", f"room below soc_max for {o.duration_s / 3600:.2g} h", "feeder limit")}
    a, h = o.activation_ratio, o.slot_s / 3600.0
    offers, cut = [], 0
    up_w, dn_w = agg.offer_up_w.copy(), agg.offer_down_w.copy()
    for j, of in enumerate(agg.offers):
        sl = slice(j * k, min(n, (j + 1) * k))
        new, notes = {}, []
        for side, val in (("up", of.up_w), ("down", of.down_w)):
            r, arg = room[side]
            i = sl.start + int(np.argmin(r[sl])) if r[sl].size else sl.start
            keep = float(r[i]) if r[sl].size else 0.0
            if val > keep + 1.0:
                new[side] = max(np.floor(keep), 0.0)
                notes.append(f"{side} {val / 1000:.1f} → {new[side] / 1000:.1f} kW ({why[side][int(arg[i])]})")
            else:
                new[side] = val
        if not notes:
            offers.append(of)
            continue
        cut += 1
        u, d = new["up"], new["down"]
        up_w[sl], dn_w[sl] = u, d
        cu, cd = np.nan_to_num(of.capacity_price_up), np.nan_to_num(of.capacity_price_down)
        eu, ed = np.nan_to_num(of.energy_price_up), np.nan_to_num(of.energy_price_down)
        rev = (cu * u + cd * d) / 1000.0 + a * h * (eu * u + ed * d) / 1000.0
        offers.append(dataclasses.replace(of, up_w=u, down_w=d, expected_revenue=float(rev),
                                          reason=(of.reason + "; " if of.reason.startswith(_CUT) else _CUT)
                                          + "; ".join(notes)))
    if not cut:
        return agg
    cut = sum(x.reason.startswith(_CUT) for x in offers)
    risk = sum(a * h * (np.nan_to_num(x.energy_price_up) * x.up_w + np.nan_to_num(x.energy_price_down) * x.down_w)
               / 1000.0 for x in offers)
    act = {b: a * (up_w - dn_w) for b in agg.expected_activation_w}
    return dataclasses.replace(
        agg, offers=offers, offer_up_w=up_w, offer_down_w=dn_w, expected_activation_w=act,
        expected_revenue=float(sum(x.expected_revenue for x in offers)), revenue_at_risk=float(risk),
        warnings=[w for w in agg.warnings if not w.startswith("offers cut")]
        + [f"offers cut to what the homes can deliver in {cut} offer slots"])
