"""Fleet problem and plan: the inputs of :func:`~optimizer.fleet.plan_fleet` (homes as
arrays) and its result, plus the per-home parameters broadcast once (:meth:`FleetProblem.arrays`).

Per-home arrays are ``(H, n)``: homes by row, slots by column; units W, fraction, Wh.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..inputs import EvSession, GridParams, Horizon, OfferParams, Prices, Problem, SolveOptions, VppCommitments
from ..schedule import Schedule

__all__ = ["FleetProblem", "FleetPlan", "TOL", "clean_commitments", "ev_home_rows"]

TOL = 1e-6  # [fraction] SoC tolerance of the fleet checks


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
        Site-level aggregator awards and dispatch (see :func:`optimizer.model_vpp.add_vpp`),
        held by the fleet as a whole: Σ_h battery power follows ``dispatch_w``; the homes'
        summed headroom covers ``award_up_w`` / ``award_down_w`` for ``duration_s``.
    offers : OfferParams or None
        Aggregator offers to size (see :func:`optimizer.model_vpp.add_offers`): sized by the
        aggregate LP on the virtual battery, then checked on the homes as awards are and cut
        per offer slot to what the homes can deliver (:func:`~optimizer.fleet.checks.check_offers`).
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


def clean_commitments(fp: FleetProblem) -> FleetProblem:
    """``fp`` with its VPP awards as (n,) arrays and dispatch NaN = none, as the site LP sees
    them (:meth:`Problem.cleaned`)."""
    if fp.vpp is None:
        return fp
    n = fp.horizon.n
    return dataclasses.replace(fp, vpp=Problem(fp.horizon, np.zeros(n), np.zeros(n), vpp=fp.vpp).cleaned().vpp)


def ev_home_rows(fp: FleetProblem) -> np.ndarray:
    """Home row of each EV session (``-1``: on the feeder), validated."""
    eh = np.asarray(fp.ev_home if len(fp.ev_home) else [-1] * len(fp.evs), int).ravel()
    if eh.size != len(fp.evs):
        raise ValueError(f"ev_home has {eh.size} rows for {len(fp.evs)} EV sessions")
    if np.any(eh >= fp.n_homes) or np.any(eh < -1):
        raise ValueError("ev_home: a row outside the fleet")
    return eh
