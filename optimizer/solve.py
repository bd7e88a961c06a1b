"""Solve a :class:`~optimizer.inputs.Problem` and return a validated
:class:`~optimizer.schedule.Schedule`.

HiGHS (through PuLP's highspy API) first, with the time limit and MIP gap of
``SolveOptions``; CBC if HiGHS raises or returns no solution (and CBC is installed). GLPK is
never used: it can stop at a time limit with a poor plan while reporting "Optimal". For the
same reason the solver's status is not trusted alone: :func:`validate` re-checks the power
balance, the bounds and the reserve floor on the returned numbers. No solver output ever
reaches stdout (``msg=False``; HiGHS's start-up banner goes to stderr, :func:`_quiet_highs_banner`).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from datetime import timedelta
import warnings

import numpy as np
import pulp

from .inputs import ForecastWarning, Problem
from .lp_first import relaxation_if_integral
from .model import Model, build, buy_effective, pessimistic_margins
from .schedule import Offer, Schedule, SolverInfo
from .solve_scenarios import solve_scenarios

__all__ = ["solve", "SolveError", "validate"]

_TOL_W = 1.0  # [W] residual / bound tolerance when validating
_TOL_SOC = 1e-5


class SolveError(RuntimeError):
    """No solver returned a usable plan."""


_banner_lock = threading.Lock()
_banner_done: list[bool] = []


def _quiet_highs_banner() -> None:
    """Make the process's first HiGHS object with stdout pointed at stderr: HiGHS prints its
    banner on the C-level stdout then, before ``msg=False`` reaches it (``--json`` stays pure)."""
    with _banner_lock:
        if _banner_done:
            return
        _banner_done.append(True)
        try:
            import highspy
            sys.stdout.flush()
            saved = os.dup(1)
        except (ImportError, OSError, AttributeError):  # no HiGHS, or no stdout to keep clean
            return
        try:
            os.dup2(2, 1)
            highspy.Highs()
            ctypes.CDLL(None).fflush(None)  # the banner may still sit in C's stdout buffer
        except OSError:  # no stderr either: solving matters more than the banner
            pass
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def _solvers(problem: Problem) -> list[tuple[str, pulp.LpSolver]]:
    o = problem.options
    _quiet_highs_banner()
    highs = ("HiGHS", pulp.HiGHS(msg=False, timeLimit=o.time_limit_s, gapRel=o.mip_gap, threads=1))
    out = [highs]
    try:
        cbc = pulp.COIN_CMD(msg=False, timeLimit=o.time_limit_s, gapRel=o.mip_gap, threads=1)
        if cbc.available():
            out.append(("CBC", cbc))
    except Exception:  # noqa: BLE001 - CBC is optional
        pass
    if o.solver == "cbc":
        out.reverse()
    return out


def _values(vars_: list) -> np.ndarray:
    return np.fromiter((v.value() or 0.0 for v in vars_), float, len(vars_))


def _run(m: Model) -> tuple[str, str, float | None, float]:
    """Solve ``m.lp``; returns (solver, status, gap, seconds). HiGHS's LP relaxation first
    when it is integral (:mod:`optimizer.lp_first`), the MILP otherwise."""
    if m.problem.options.solver == "highs":
        _quiet_highs_banner()
        lp = relaxation_if_integral(m)
        if lp is not None:
            return lp
    errors = []
    for name, solver in _solvers(m.problem):
        t0 = time.perf_counter()
        try:
            stats = m.lp.solve(solver)
        except Exception as e:  # noqa: BLE001 - try the next solver
            errors.append(f"{name}: {e}")
            continue
        dt = time.perf_counter() - t0
        if stats.has_solution:
            gap = stats.gap_rel if stats.is_mip else 0.0
            return name, stats.status_str, gap, dt
        errors.append(f"{name}: {stats.status_str}")
    raise SolveError("; ".join(errors) or "no solver available")


def solve(problem: Problem) -> Schedule:
    """Plan ``problem``: clean inputs, build, solve, validate, extract.

    Never infeasible by design (priced slacks); raises :class:`SolveError` only if no solver
    returns a solution, and ``ValueError`` for inconsistent parameters. A problem with more
    than one scenario (``Problem.scenarios``) is planned over all of them
    (:func:`optimizer.solve_scenarios.solve_scenarios`).
    """
    if problem.scenarios is not None and problem.scenarios.k > 1:
        return solve_scenarios(problem, problem.scenarios)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ForecastWarning)
        p = problem.cleaned()
    repaired = [str(w.message) for w in caught if issubclass(w.category, ForecastWarning)]
    for msg in repaired:
        warnings.warn(msg, ForecastWarning, stacklevel=2)
    _check(p)
    offer_mode = _offer_mode(p)
    m = build(p, offer_mode=offer_mode)
    build_s = time.perf_counter() - t0
    solver, status, gap, solve_s = _run(m)
    if offer_mode == "p50":
        # second pass: the pessimistic margins bind exactly the slots the first pass offered
        on = _offered_slots(m)
        t1 = time.perf_counter()
        m2 = build(p, offer_mode=on)
        build_s += time.perf_counter() - t1
        try:
            solver, status, gap, s2 = _run(m2)
            m = m2
        except SolveError:
            # the margins of the offered slots conflict with each other: offer only where
            # no margin is needed (always feasible: the plan without those offers)
            t1 = time.perf_counter()
            m = build(p, offer_mode={})
            build_s += time.perf_counter() - t1
            solver, status, gap, s2 = _run(m)
            m.notes.append("offers: pessimistic margins of the offered slots conflict; slots with a margin not offered")
        solve_s += s2
    sched = extract(m)
    problems = validate(p, sched, m)
    for _ in range(4):
        if p.options.allow_simultaneous is not None:
            break
        bat_slots = _simultaneous_slots(m)
        grid_simul = bool(np.any(np.minimum(sched.grid_import_w, sched.grid_export_w) > _TOL_W))
        new_bat = bat_slots and m.binaries_bat is not True
        if not (new_bat or (grid_simul and not m.binaries_grid)):
            break
        # a price tie (or relief of a held-capacity limit) let the LP pick a simultaneous
        # flow: forbid it with binaries in those slots only, then everywhere if it moves on
        prev = m.binaries_bat
        if not new_bat:
            bat = prev
        elif prev is False:
            bat = frozenset(bat_slots)
        elif isinstance(prev, frozenset) and len(prev) < 4 * max(1, len(bat_slots)):
            bat = prev | bat_slots
        else:
            bat = True
        t1 = time.perf_counter()
        m = build(p, binaries=(bat, m.binaries_grid or grid_simul), offer_mode=m.offer_mode)
        build_s += time.perf_counter() - t1
        solver, status, gap, s2 = _run(m)
        solve_s += s2
        sched = extract(m)
        problems = validate(p, sched, m)
    sched.warnings = repaired + m.notes + _slack_warnings(sched) + problems
    if status != "Optimal":
        sched.warnings.append(f"solver stopped with status {status} (gap {gap}); plan is feasible but not proven optimal")
    sched.solver = SolverInfo(
        solver=solver,
        status=status,
        validated=not problems,
        gap=gap,
        build_s=build_s,
        solve_s=solve_s,
        objective=float(m.lp.objective.value() or 0.0),
        n_variables=m.lp.numVariables(),
        n_constraints=m.lp.numConstraints(),
        n_binaries=m.n_binaries,
        max_residual_w=float(np.abs(_residual(p, sched)).max(initial=0.0)),
    )
    return sched


def _check(p: Problem) -> None:
    for b in p.batteries:
        if b.capacity_wh <= 0 or not (0 < b.eta_charge <= 1 and 0 < b.eta_discharge <= 1):
            raise ValueError(f"battery {b.id}: capacity must be > 0 and efficiencies in (0, 1]")
        if not (0 <= b.soc_min <= b.soc_max <= 1):
            raise ValueError(f"battery {b.id}: need 0 <= soc_min <= soc_max <= 1")
        if np.any(np.asarray(b.max_charge_w) < 0) or np.any(np.asarray(b.max_discharge_w) < 0):
            raise ValueError(f"battery {b.id}: power limits must be >= 0")
    seen: dict[str, list[tuple[int, int]]] = {}
    for s in p.evs:
        if s.min_w > s.max_w:
            raise ValueError(f"EV on {s.charger_id}: min_w > max_w")
        for a, d in seen.get(s.charger_id, []):
            if s.arrival_slot < d and a < s.departure_slot:
                raise ValueError(f"EV sessions overlap on charger {s.charger_id}")
        seen.setdefault(s.charger_id, []).append((s.arrival_slot, s.departure_slot))
    ids = [b.id for b in p.batteries] + [d.id for d in p.deferrable]
    if len(set(ids)) != len(ids):
        raise ValueError("battery and deferrable-load ids must be unique")


def extract(m: Model) -> Schedule:
    """Read the solution into a :class:`Schedule` (no PuLP object escapes)."""
    p = m.problem
    n, dt = p.horizon.n, p.horizon.dt_h
    imp, exp = _values(m.p_imp), _values(m.p_exp)
    buy = buy_effective(p)
    co2 = np.asarray(p.prices.co2_kg_per_kwh) * imp * dt / 1000.0
    cost = dt / 1000.0 * (buy * imp - np.asarray(p.prices.sell) * exp)
    bw, soc, floor, rec, rec_kwh = {}, {}, {}, {}, {}
    for b in p.batteries:
        ch, dis = _values(m.p_ch[b.id]), _values(m.p_dis[b.id])
        bw[b.id] = dis - ch
        soc[b.id] = _values(m.soc[b.id])
        floor[b.id] = np.where(p.outage, np.nan, m.floor[b.id])
        r = np.zeros(n)
        for t, v in m.rec[b.id].items():
            r[t] = max(v.value() or 0.0, 0.0)
        rec[b.id] = r
        rec_kwh[b.id] = float(r.max(initial=0.0) * b.capacity_wh / 1000.0)
        cost = cost + b.degradation_cost_per_kwh * dt / 1000.0 * (ch + dis)
    ev_w: dict[str, np.ndarray] = {}
    unmet: dict[str, float] = {}
    for s, vars_, u in zip(p.evs, m.p_ev, m.ev_unmet):
        arr = ev_w.setdefault(s.charger_id, np.zeros(n))
        for t, v in vars_.items():
            arr[t] += v.value() or 0.0
        unmet[s.charger_id] = unmet.get(s.charger_id, 0.0) + max(u.value() or 0.0, 0.0)
    dw = {d.id: np.round(_values(m.on[d.id])) * d.power_w for d in p.deferrable}
    short = None
    if m.disp_short:
        short = np.zeros(n)
        for t, (sp, sn) in m.disp_short.items():
            short[t] = (sp.value() or 0.0) - (sn.value() or 0.0)
    a_up = a_dn = None
    if p.vpp is not None:
        a_up, a_dn = _award_shortfall(m, m.award_short_up, p.vpp.award_up_w), _award_shortfall(
            m, m.award_short_dn, p.vpp.award_down_w)
    sched = Schedule(
        start=p.horizon.start,
        slot_s=p.horizon.slot_s,
        n=n,
        grid_import_w=imp,
        grid_export_w=exp,
        pv_w=p.pv_w.copy(),
        pv_curtail_w=_values(m.p_curt),
        load_w=p.load_w.copy(),
        unserved_w=_values(m.p_unserved),
        cost=cost,
        co2_kg=co2,
        battery_w=bw,
        soc=soc,
        floor=floor,
        recovery=rec,
        ev_w=ev_w,
        deferrable_w=dw,
        dispatch_shortfall_w=short,
        award_shortfall_up_w=a_up,
        award_shortfall_down_w=a_dn,
        recovery_kwh=rec_kwh,
        ev_unmet_wh=unmet,
    )
    if p.offers is not None:
        _extract_offers(m, sched)
    return sched


def _award_shortfall(m: Model, vars_: dict, award) -> np.ndarray:
    """Per-slot award shortfall [W], at most the award; sub-watt values are solver noise."""
    n = m.problem.horizon.n
    out = np.zeros(n)
    aw = np.broadcast_to(np.asarray(award, float), (n,))
    for t, v in vars_.items():
        out[t] = min(max(v.value() or 0.0, 0.0), float(aw[t]))
    out[out < 1e-3] = 0.0
    return out


def _offer_power(m: Model, bid: str) -> tuple[np.ndarray, np.ndarray]:
    """Up / down ΔkW of battery ``bid`` held in each plan slot [W] (zeros without offers)."""
    p = m.problem
    n = p.horizon.n
    up, dn = np.zeros(n), np.zeros(n)
    if p.offers is None or bid not in m.offer_up:
        return up, dn
    k = p.offers.steps(p.horizon.slot_s)
    for j, (u, d) in enumerate(zip(m.offer_up[bid], m.offer_dn[bid])):
        sl = slice(j * k, (j + 1) * k)
        up[sl] = max(u.value() or 0.0, 0.0) if u is not None else 0.0
        dn[sl] = max(d.value() or 0.0, 0.0) if d is not None else 0.0
    return up, dn


def _extract_offers(m: Model, sched: Schedule) -> None:
    """Site offers per offer slot, their expected revenue and the revenue at risk."""
    p = m.problem
    o = p.offers
    n = p.horizon.n
    k = o.steps(p.horizon.slot_s)
    a, h = o.activation_ratio, o.slot_s / 3600.0
    up, dn = np.zeros(n), np.zeros(n)
    for b in p.batteries:
        bu, bd = _offer_power(m, b.id)
        up, dn = up + bu, dn + bd
        sched.expected_activation_w[b.id] = a * (bu - bd)
    # sub-watt offers are solver noise, not bids
    up[up < _TOL_W] = 0.0
    dn[dn < _TOL_W] = 0.0
    sched.offer_up_w, sched.offer_down_w = up, dn
    pr = o.prices
    total = at_risk = 0.0
    for j in range(n // k):
        u, d = float(up[j * k]), float(dn[j * k])
        cu, cd = float(np.nan_to_num(pr.capacity_up[j])), float(np.nan_to_num(pr.capacity_down[j]))
        eu, ed = float(np.nan_to_num(pr.energy_up[j])), float(np.nan_to_num(pr.energy_down[j]))
        energy = a * h * (eu * u + ed * d) / 1000.0
        rev = (cu * u + cd * d) / 1000.0 + energy
        reason = o.blocked.get(j, "")
        if not reason and u == 0 and d == 0:
            reason = "no capacity price" if cu <= 0 and cd <= 0 else "not worth holding or not deliverable"
        start = p.horizon.start + timedelta(seconds=p.horizon.slot_s * j * k)
        sched.offers.append(Offer(start, u, d, cu, cd, eu, ed, rev, reason))
        total += rev
        at_risk += energy
    sched.expected_revenue, sched.revenue_at_risk = total, at_risk


def _residual(p: Problem, s: Schedule) -> np.ndarray:
    supply = s.pv_w - s.pv_curtail_w + s.grid_import_w - s.grid_export_w + s.unserved_w
    for w in s.battery_w.values():
        supply = supply + w
    demand = s.load_w.copy()
    for w in list(s.ev_w.values()) + list(s.deferrable_w.values()):
        demand = demand + w
    return supply - demand


def _simultaneous_slots(m: Model) -> frozenset[int]:
    """Slots in which some battery charges and discharges at once."""
    out: set[int] = set()
    for b in m.problem.batteries:
        ch, dis = _values(m.p_ch[b.id]), _values(m.p_dis[b.id])
        out.update(np.flatnonzero(np.minimum(ch, dis) > _TOL_W).tolist())
    return frozenset(out)


def _offer_mode(p: Problem):
    """How offers meet the pessimistic margins (see :func:`optimizer.model_vpp.add_offers`):
    ``"none"`` without margins; else ``"p50"`` for a first pass that sizes offers on the
    median forecast, whose offered slots then get the margins in a second pass."""
    if p.offers is None or not p.batteries:
        return "none"
    d_up, d_dn = pessimistic_margins(p)
    return "p50" if (d_up.max(initial=0.0) > 0 or d_dn.max(initial=0.0) > 0) else "none"


def _offered_slots(m: Model) -> dict[tuple[str, int], bool]:
    """``{(side, j): offered}`` from a solved model."""
    out: dict[tuple[str, int], bool] = {}
    for side, vars_ in (("up", m.offer_up), ("dn", m.offer_dn)):
        for vs in vars_.values():
            for j, v in enumerate(vs):
                if v is not None and (v.value() or 0.0) > _TOL_W:
                    out[(side, j)] = True
    return out


def validate(p: Problem, s: Schedule, m: Model | None = None) -> list[str]:
    """Check a plan against the physics and limits; returns what is violated (empty = ok).

    Balance residual ≤ 1 W per slot; grid within limits (0 in outages); battery power and
    SoC within limits, SoC trajectory consistent with the efficiencies; SoC ≥ floor wherever
    no recovery slack was granted; VPP awards less their reported shortfall are deliverable
    (:func:`_validate_awards`; a shortfall itself is a warning, not a failure); deferrable
    loads run their steps.
    """
    out: list[str] = []
    dt = p.horizon.dt_h
    res = np.abs(_residual(p, s))
    if res.max(initial=0.0) > _TOL_W:
        out.append(f"power balance residual {res.max():.3g} W")
    if np.any(s.grid_import_w > p.grid.import_limit_w + _TOL_W) or np.any(s.grid_export_w > p.grid.export_limit_w + _TOL_W):
        out.append("grid limit exceeded")
    if np.any((s.grid_import_w + s.grid_export_w)[p.outage] > _TOL_W):
        out.append("grid used during outage")
    for b in p.batteries:
        w = s.battery_w[b.id]
        if np.any(w > b.max_discharge_w + _TOL_W) or np.any(-w > b.max_charge_w + _TOL_W):
            out.append(f"{b.id}: power limit exceeded")
        soc = s.soc[b.id]
        if m is not None:
            ch, dis = _values(m.p_ch[b.id]), _values(m.p_dis[b.id])
            up, dn = _offer_power(m, b.id)
            a = p.offers.activation_ratio if p.offers is not None else 0.0
            ch, dis = ch + a * dn, dis + a * up
            model_soc = b.soc0 + np.cumsum(dt / b.capacity_wh * (b.eta_charge * ch - dis / b.eta_discharge))
            if np.abs(model_soc - soc).max(initial=0.0) > 1e-4:
                out.append(f"{b.id}: SoC trajectory inconsistent with the power plan")
        if np.any(soc > max(b.soc_max, b.soc0) + _TOL_SOC):
            out.append(f"{b.id}: SoC above soc_max")
        fl = np.nan_to_num(s.floor[b.id], nan=b.soc_min)
        below = soc + s.recovery[b.id] < fl - _TOL_SOC
        if np.any(below):
            out.append(f"{b.id}: SoC below the reserve floor in {int(below.sum())} slots")
        if m is not None:
            hard = np.ones(p.horizon.n, bool)
            hard[list(m.rec[b.id])] = False
            if np.any((soc < fl - _TOL_SOC) & hard):
                out.append(f"{b.id}: hard reserve floor crossed")
    out += _validate_awards(p, s)
    for d in p.deferrable:
        steps = int(round(s.deferrable_w[d.id].sum() / d.power_w)) if d.power_w else d.total_steps
        if steps != min(d.total_steps, p.horizon.n):
            out.append(f"{d.id}: runs {steps} steps, needs {d.total_steps}")
    return out


def _validate_awards(p: Problem, s: Schedule) -> list[str]:
    """The part of each award the plan claims to keep (award − shortfall) is deliverable by
    the returned numbers: power headroom ``Σ_b (P_d − w_b) ≥ A_up − a_up``, energy above the
    floors ``Σ_b η_d·C_b·(soc − floor)⁺ ≥ (A_up − a_up)·τ`` at slot start and end, grid room
    ``exp − imp + A_up − a_up ≤ E``; the mirror image for down (charge room to ``soc_max``
    at slot end). Outage slots are not checked (awards are not held there)."""
    v = p.vpp
    if v is None or not p.batteries or s.award_shortfall_up_w is None:
        return []
    n, tau = p.horizon.n, v.duration_s / 3600.0
    ok_up = np.maximum(np.asarray(v.award_up_w, float) - s.award_shortfall_up_w, 0.0)
    ok_dn = np.maximum(np.asarray(v.award_down_w, float) - s.award_shortfall_down_w, 0.0)
    live = ~np.asarray(p.outage, bool)
    p_up = sum(np.broadcast_to(np.asarray(b.max_discharge_w, float), (n,)) - s.battery_w[b.id] for b in p.batteries)
    p_dn = sum(np.broadcast_to(np.asarray(b.max_charge_w, float), (n,)) + s.battery_w[b.id] for b in p.batteries)
    e_up_end = e_up_start = e_dn = np.zeros(n)
    for b in p.batteries:
        fl = np.nan_to_num(s.floor[b.id], nan=b.soc_min)
        soc = s.soc[b.id]
        prev = np.r_[b.soc0, soc[:-1]]
        e = b.eta_discharge * b.capacity_wh
        e_up_end = e_up_end + e * np.clip(soc - fl, 0.0, None)
        e_up_start = e_up_start + e * np.clip(prev - fl, 0.0, None)
        e_dn = e_dn + b.capacity_wh / b.eta_charge * np.clip(b.soc_max - soc, 0.0, None)
    g = s.grid_export_w - s.grid_import_w
    tol_e = np.maximum(1.0, 1e-4 * ok_up * tau)
    bad_up = live & (ok_up > 0) & ((p_up < ok_up - _TOL_W) | (np.minimum(e_up_end, e_up_start) < ok_up * tau - tol_e)
                                   | (g + ok_up > p.grid.export_limit_w + _TOL_W))
    tol_e = np.maximum(1.0, 1e-4 * ok_dn * tau)
    bad_dn = live & (ok_dn > 0) & ((p_dn < ok_dn - _TOL_W) | (e_dn < ok_dn * tau - tol_e)
                                   | (-g + ok_dn > p.grid.import_limit_w + _TOL_W))
    out = []
    if bad_up.any():
        out.append(f"VPP up award (less its reported shortfall) not deliverable in slots {_slots(bad_up)}")
    if bad_dn.any():
        out.append(f"VPP down award (less its reported shortfall) not deliverable in slots {_slots(bad_dn)}")
    return out


def _slots(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    return ", ".join(str(int(t)) for t in idx[:6]) + (" …" if idx.size > 6 else "")


def _slack_warnings(s: Schedule) -> list[str]:
    out = []
    for bid, kwh in s.recovery_kwh.items():
        if kwh > 1e-3:
            slots = int((s.recovery[bid] > 1e-6).sum())
            out.append(f"{bid}: SoC below the reserve floor by up to {kwh:.2f} kWh for {slots} slots (recovering)")
    for cid, wh in s.ev_unmet_wh.items():
        if wh > 1.0:
            out.append(f"EV on {cid}: {wh / 1000:.2f} kWh cannot be delivered by departure")
    if s.unserved_w.max(initial=0.0) > _TOL_W:
        out.append(f"load not served: {s.unserved_w.sum() * s.slot_s / 3.6e6:.2f} kWh")
    if s.dispatch_shortfall_w is not None and np.abs(s.dispatch_shortfall_w).max(initial=0.0) > _TOL_W:
        out.append(f"VPP dispatch not fully followed: up to {np.abs(s.dispatch_shortfall_w).max():.0f} W short")
    for side, arr in (("up", s.award_shortfall_up_w), ("down", s.award_shortfall_down_w)):
        if arr is not None and arr.max(initial=0.0) > _TOL_W:
            out.append(f"VPP {side} award at risk: up to {arr.max() / 1000:.2f} kW cannot be kept deliverable "
                       f"in slots {_slots(arr > _TOL_W)} (reserve floor held)")
    return out
