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
2. **Disaggregation** (:func:`disaggregate`, vectorised over homes, one pass over slots):
   recovering homes follow ``r`` and homes that a rising (storm) floor would leave behind
   charge just enough to stay on it; the aggregate battery power of slot ``t`` is
   water-filled over the other homes in proportion to their
   energy above the floor (discharge) or room below ``soc_max`` (charge), each capped by its
   power limit, meter headroom and what its SoC allows in one slot. Each home's SoC is then
   stepped with its own efficiencies, so per-home floors and windows hold by construction.
3. **Repair and validation**: surplus beyond a home's export limit or the feeder export
   limit is curtailed (proportionally to PV output); every home's power, SoC, floor and
   meter limits and the feeder limits are re-checked, and the differences to the aggregate
   plan are reported (:class:`FleetPlan` ``violations``, ``tracking_error_w``).

Per-home arrays are ``(H, n)``: homes by row, slots by column; units W, fraction, Wh.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .inputs import BatteryParams, GridParams, Horizon, Prices, Problem, SolveOptions
from .schedule import Schedule
from .solve import solve

__all__ = ["FleetProblem", "FleetPlan", "plan_fleet", "aggregate_problem", "disaggregate"]

_TOL = 1e-6


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
    (home meter, > 0 import), ``unserved_w``; ``feeder_import_w`` / ``feeder_export_w`` (n,);
    ``cost`` per slot at the feeder; ``aggregate`` is the aggregate LP's schedule;
    ``tracking_error_w`` the largest |Σ_h battery − aggregate battery| per slot;
    ``violations`` lists broken limits in words (empty = every home and the feeder are
    within limits); ``timings`` in s.
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


def aggregate_problem(fp: FleetProblem, a: dict[str, np.ndarray] | None = None) -> Problem:
    """The single virtual-battery site problem of step 1 (see module docstring)."""
    a = a or fp.arrays()
    cap = a["capacity_wh"]
    C = float(cap.sum())
    w = cap / C
    cap_c, cap_d = _meter_caps(a)
    dt = fp.horizon.dt_h
    r, recovering = _recovery(a, cap_c, dt)
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
    return Problem(
        horizon=fp.horizon,
        pv_w=a["pv_w"].sum(axis=0),
        load_w=a["load_w"].sum(axis=0) + r.sum(axis=0),
        batteries=(bat,),
        grid=fp.feeder,
        prices=fp.prices,
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


def disaggregate(fp: FleetProblem, agg_battery_w: np.ndarray, a: dict[str, np.ndarray] | None = None):
    """Step 2: per-home battery power ``(H, n)`` [W] and SoC following the aggregate power
    ``agg_battery_w`` (n,) [W, > 0 discharge]; returns ``(battery_w, soc)``."""
    a = a or fp.arrays()
    H, n = fp.n_homes, fp.horizon.n
    dt = fp.horizon.dt_h
    cap, etac, etad, smax = a["capacity_wh"], a["eta_charge"], a["eta_discharge"], a["soc_max"]
    floor = a["floor"]
    cap_c, cap_d = _meter_caps(a)
    r, _ = _recovery(a, cap_c, dt)
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


def plan_fleet(fp: FleetProblem) -> FleetPlan:
    """Plan every home behind the feeder (aggregate LP → disaggregation → repair → checks)."""
    t0 = time.perf_counter()
    a = fp.arrays()
    agg = solve(aggregate_problem(fp, a))
    t1 = time.perf_counter()
    bw, soc = disaggregate(fp, agg.battery_w["fleet"], a)
    t2 = time.perf_counter()

    pv, load = a["pv_w"], a["load_w"]
    curt = np.zeros_like(pv)
    grid = load - pv - bw  # home meter before curtailment, > 0 import
    # home export limit: curtail the excess
    over = np.clip(-grid - a["home_export_limit_w"][:, None], 0, None)
    curt += np.minimum(over, pv)
    grid = load - pv + curt - bw
    # feeder export limit: curtail proportionally to remaining PV
    feeder = grid.sum(axis=0)
    excess = np.clip(-feeder - fp.feeder.export_limit_w, 0, None)
    if excess.any():
        avail = pv - curt
        tot = avail.sum(axis=0)
        frac = np.divide(excess, tot, out=np.zeros_like(excess), where=tot > 0)
        curt += avail * np.minimum(frac, 1.0)
        grid = load - pv + curt - bw
    unserved = np.clip(grid - a["home_import_limit_w"][:, None], 0, None)
    grid = grid - unserved
    feeder = grid.sum(axis=0)
    imp, exp = np.clip(feeder, 0, None), np.clip(-feeder, 0, None)
    p = fp.prices
    buy = np.asarray(p.buy, float) + p.co2_price_per_kg * np.asarray(p.co2_kg_per_kwh, float)
    dt = fp.horizon.dt_h
    cost = dt / 1000 * (buy * imp - np.asarray(p.sell, float) * exp)
    cost = cost + fp.degradation_cost_per_kwh * dt / 1000 * np.abs(bw).sum(axis=0)

    viol = _check(fp, a, bw, soc, grid, imp, exp)
    recovery_w = _recovery(a, _meter_caps(a)[0], fp.horizon.dt_h)[0].sum(axis=0)
    track = float(np.abs(bw.sum(axis=0) + recovery_w - agg.battery_w["fleet"]).max())
    warn = list(agg.warnings)
    if unserved.max() > 1.0:
        warn.append(f"{int((unserved.max(axis=1) > 1).sum())} homes cannot serve their load within their meter limit")
    if track > 1.0:
        warn.append(f"homes track the aggregate battery plan within {track:.0f} W")
    t3 = time.perf_counter()
    return FleetPlan(
        battery_w=bw, soc=soc, curtail_w=curt, grid_w=grid, unserved_w=unserved,
        feeder_import_w=imp, feeder_export_w=exp, cost=cost, aggregate=agg,
        tracking_error_w=track, violations=viol, warnings=warn,
        timings={"aggregate_s": t1 - t0, "disaggregate_s": t2 - t1, "check_s": t3 - t2, "total_s": t3 - t0},
    )


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
