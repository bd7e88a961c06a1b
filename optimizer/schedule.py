"""The optimiser's output: a plain :class:`Schedule` (numpy arrays, no solver objects).

Units and signs as in ``drivers``: W, Wh, kWh where named, SoC fraction; battery power > 0
discharges; grid import and export are both >= 0 (import − export = grid power).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import numpy as np

__all__ = ["SolverInfo", "Offer", "Schedule"]


@dataclass
class SolverInfo:
    """How the plan was obtained. ``status`` is the solver's word ("Optimal", "TimeLimit",
    ...); ``validated`` says our own checks of the returned solution passed; ``gap`` is the
    relative MIP gap (0 for a pure LP); times in s."""

    solver: str
    status: str
    validated: bool
    gap: float | None
    build_s: float
    solve_s: float
    objective: float
    n_variables: int
    n_constraints: int
    n_binaries: int
    max_residual_w: float = 0.0


@dataclass
class Offer:
    """What the site offers the aggregator for one offer slot (30 min from ``slot_start``).

    ``up_w`` / ``down_w`` [W] ΔkW held (up = more discharge / less charge, down = more
    charge); capacity prices [currency/kW per slot]; energy prices [currency/kWh];
    ``expected_revenue`` [currency] = capacity payment + activation ratio × energy payment;
    ``reason`` says why nothing is offered (storm, outage, missing price), else empty.
    """

    slot_start: datetime
    up_w: float
    down_w: float
    capacity_price_up: float
    capacity_price_down: float
    energy_price_up: float
    energy_price_down: float
    expected_revenue: float
    reason: str = ""

    @property
    def capacity_price(self) -> float:
        """Capacity price of the larger side offered [currency/kW per slot]."""
        return self.capacity_price_up if self.up_w >= self.down_w else self.capacity_price_down

    @property
    def energy_price(self) -> float:
        """Energy price of the larger side offered [currency/kWh]."""
        return self.energy_price_up if self.up_w >= self.down_w else self.energy_price_down


@dataclass
class Schedule:
    """A plan, one value per slot.

    Per-slot arrays (length ``n``): ``grid_import_w``, ``grid_export_w``, ``pv_w`` (forecast),
    ``pv_curtail_w``, ``load_w`` (forecast), ``unserved_w`` (load that could not be served),
    ``cost`` (energy bill + CO2 price + degradation per slot [currency]), ``co2_kg`` and per
    device dicts ``battery_w`` / ``soc`` (after the slot) / ``floor`` (effective reserve floor,
    NaN in outage slots) / ``recovery`` (SoC shortfall below the floor [fraction]) by battery
    id, ``ev_w`` by charger id, ``deferrable_w`` by load id.

    Totals: ``total_cost``, ``total_co2_kg``, ``import_kwh``, ``export_kwh``; slack used:
    ``recovery_kwh`` (largest energy shortfall below the floor per battery [kWh]),
    ``ev_unmet_wh`` per charger, ``dispatch_shortfall_w`` per slot; ``warnings`` says in words
    what slack was used and what input was repaired.

    VPP awards (``Problem.vpp``): ``award_shortfall_up_w`` / ``award_shortfall_down_w`` per
    slot [W], the part of the accepted award the plan cannot keep deliverable for the product
    duration (SoC below what the award needs above the floor, power or grid room short);
    zeros where the award is kept, ``None`` without VPP commitments. A plan with a shortfall
    is still a valid plan (the reserve floor is never given up for an award); a warning and
    :meth:`award_at_risk` name the slots.

    With offers (``Problem.offers``): ``offers`` one :class:`Offer` per offer slot;
    ``offer_up_w`` / ``offer_down_w`` the site's ΔkW held in each plan slot [W];
    ``expected_activation_w`` per battery the expected dispatch power included in ``soc``
    [W] (> 0 discharge; ``battery_w`` is the plan *without* dispatch); ``expected_revenue``
    [currency] and ``revenue_at_risk`` [currency], the part of it paid only if dispatched
    (capacity payments are secure: offers are deliverable in the pessimistic case).
    """

    start: datetime
    slot_s: int
    n: int
    grid_import_w: np.ndarray
    grid_export_w: np.ndarray
    pv_w: np.ndarray
    pv_curtail_w: np.ndarray
    load_w: np.ndarray
    unserved_w: np.ndarray
    cost: np.ndarray
    co2_kg: np.ndarray
    battery_w: dict[str, np.ndarray] = field(default_factory=dict)
    soc: dict[str, np.ndarray] = field(default_factory=dict)
    floor: dict[str, np.ndarray] = field(default_factory=dict)
    recovery: dict[str, np.ndarray] = field(default_factory=dict)
    ev_w: dict[str, np.ndarray] = field(default_factory=dict)
    deferrable_w: dict[str, np.ndarray] = field(default_factory=dict)
    dispatch_shortfall_w: np.ndarray | None = None
    award_shortfall_up_w: np.ndarray | None = None
    award_shortfall_down_w: np.ndarray | None = None
    recovery_kwh: dict[str, float] = field(default_factory=dict)
    ev_unmet_wh: dict[str, float] = field(default_factory=dict)
    offers: list[Offer] = field(default_factory=list)
    offer_up_w: np.ndarray | None = None
    offer_down_w: np.ndarray | None = None
    expected_activation_w: dict[str, np.ndarray] = field(default_factory=dict)
    expected_revenue: float = 0.0
    revenue_at_risk: float = 0.0
    warnings: list[str] = field(default_factory=list)
    solver: SolverInfo | None = None
    #: scenario planning: SoC [fraction] per battery, shape ``(k, n)``, row 0 = ``soc`` (empty for one scenario)
    soc_scenarios: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def grid_w(self) -> np.ndarray:
        """Net grid power [W] (> 0 import)."""
        return self.grid_import_w - self.grid_export_w

    @property
    def total_cost(self) -> float:
        return float(self.cost.sum())

    @property
    def total_co2_kg(self) -> float:
        return float(self.co2_kg.sum())

    @property
    def import_kwh(self) -> float:
        return float(self.grid_import_w.sum() * self.slot_s / 3.6e6)

    @property
    def export_kwh(self) -> float:
        return float(self.grid_export_w.sum() * self.slot_s / 3.6e6)

    def award_at_risk(self, tol_w: float = 1.0) -> list[tuple[int, float, float]]:
        """Slots whose award cannot be fully kept: ``[(slot, up short [W], down short [W])]``
        for every slot where either shortfall exceeds ``tol_w`` [W] (empty = all kept)."""
        n = self.n
        up = self.award_shortfall_up_w if self.award_shortfall_up_w is not None else np.zeros(n)
        dn = self.award_shortfall_down_w if self.award_shortfall_down_w is not None else np.zeros(n)
        return [(int(t), float(up[t]), float(dn[t])) for t in np.flatnonzero((up > tol_w) | (dn > tol_w))]

    def index(self) -> list[datetime]:
        """Slot start times."""
        return [self.start + timedelta(seconds=self.slot_s * t) for t in range(self.n)]

    def to_dataframe(self):
        """One row per slot (indexed by slot start); device columns as ``battery_w[bat1]``."""
        import pandas as pd

        cols: dict[str, np.ndarray] = {
            "grid_import_w": self.grid_import_w,
            "grid_export_w": self.grid_export_w,
            "pv_w": self.pv_w,
            "pv_curtail_w": self.pv_curtail_w,
            "load_w": self.load_w,
            "unserved_w": self.unserved_w,
            "cost": self.cost,
            "co2_kg": self.co2_kg,
        }
        for name in ("battery_w", "soc", "floor", "recovery", "ev_w", "deferrable_w"):
            for key, arr in getattr(self, name).items():
                cols[f"{name}[{key}]"] = arr
        if self.dispatch_shortfall_w is not None:
            cols["dispatch_shortfall_w"] = self.dispatch_shortfall_w
        if self.award_shortfall_up_w is not None:
            cols["award_shortfall_up_w"] = self.award_shortfall_up_w
            cols["award_shortfall_down_w"] = self.award_shortfall_down_w
        if self.offer_up_w is not None:
            cols["offer_up_w"] = self.offer_up_w
            cols["offer_down_w"] = self.offer_down_w
        return pd.DataFrame(cols, index=pd.DatetimeIndex(self.index(), name="start"))

    def to_dict(self) -> dict:
        """JSON-ready: arrays as lists (NaN as ``None``), timestamps ISO 8601."""

        def conv(v):
            if isinstance(v, np.ndarray):
                return [None if not math.isfinite(x) else float(x) for x in v.tolist()]
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            if isinstance(v, float | np.floating):
                return float(v) if math.isfinite(v) else None
            return v

        out = {
            "start": self.start.isoformat(),
            "slot_s": self.slot_s,
            "n": self.n,
            "total_cost": self.total_cost,
            "total_co2_kg": self.total_co2_kg,
            "import_kwh": self.import_kwh,
            "export_kwh": self.export_kwh,
        }
        for name in (
            "grid_import_w", "grid_export_w", "pv_w", "pv_curtail_w", "load_w", "unserved_w",
            "cost", "co2_kg", "battery_w", "soc", "floor", "recovery", "ev_w", "deferrable_w",
            "dispatch_shortfall_w", "award_shortfall_up_w", "award_shortfall_down_w", "recovery_kwh", "ev_unmet_wh", "offer_up_w", "offer_down_w",
            "expected_activation_w", "expected_revenue", "revenue_at_risk",
        ):
            out[name] = conv(getattr(self, name))
        out["offers"] = [{**conv(asdict(o)), "slot_start": o.slot_start.isoformat()} for o in self.offers]
        out["warnings"] = list(self.warnings)
        out["solver"] = conv(asdict(self.solver)) if self.solver else None
        return out
