"""Optimiser inputs: plain dataclasses, no solver objects.

Units and signs follow ``drivers``: power W, energy Wh, time s, SoC fraction 0..1 of
``capacity_wh``; prices per kWh; battery power > 0 discharges; grid power > 0 imports.
Arrays are per slot of the :class:`Horizon` (length ``n``); a scalar where an array is
allowed means "the same in every slot".

:func:`clean_forecast` is how NaN / negative / wrong-length forecasts are repaired (with a
warning) instead of crashing the planner; :func:`storm_floor` builds the reserve floor of
storm mode.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np

from .scenarios import Scenarios

__all__ = [
    "Horizon",
    "BatteryParams",
    "EvSession",
    "GridParams",
    "Prices",
    "VppCommitments",
    "DeferrableLoad",
    "SolveOptions",
    "Problem",
    "MarketPrices",
    "OfferParams",
    "PriceError",
    "DemandParams",
    "ForecastWarning",
    "clean_forecast",
    "storm_floor",
]


class ForecastWarning(UserWarning):
    """A forecast or price series was repaired (NaN, negative, wrong length)."""


class PriceError(ValueError):
    """Aggregator prices that cannot be offered against (negative, wrong day, off the slot
    grid, wrong length)."""


#: The market slot [s]: 30 minutes (JEPX コマ, ΔkW offers, settlement). The one definition of the
#: service's slot length; ``vpp.slots.SLOT_S`` is this value.
MARKET_SLOT_S = 1800


@dataclass(frozen=True)
class Horizon:
    """Planning horizon: ``n`` slots of ``slot_s`` seconds starting at ``start`` (UTC)."""

    start: datetime
    slot_s: int
    n: int

    @property
    def dt_h(self) -> float:
        """Slot length [h]."""
        return self.slot_s / 3600.0

    def slot_name(self, t: int) -> str:
        """Systematic slot label used in variable names, e.g. ``t007``."""
        return f"t{t:03d}"


@dataclass
class BatteryParams:
    """One stationary battery.

    Parameters
    ----------
    id : str
        Name used in variable names (``soc[bat1,t007]``).
    capacity_wh : float
        Usable nominal energy [Wh]; SoC fractions refer to it.
    max_charge_w, max_discharge_w : float or ndarray
        AC-side power limits [W], both >= 0 (per slot if an array).
    eta_charge, eta_discharge : float
        One-way efficiencies [-] (0 < eta <= 1).
    soc_min, soc_max : float
        Operating window [fraction].
    soc0 : float
        Measured SoC at the start of the horizon [fraction]; may lie below the floor.
    soc_end : float or None
        Minimum SoC at the end of the horizon [fraction] (``None``: free).
    degradation_cost_per_kwh : float
        Cost per kWh of AC throughput (charge + discharge) [currency/kWh].
    floor : ndarray
        Disaster-reserve floor per slot [fraction]; ``soc[b,t] >= floor[t]`` outside outages.
    """

    id: str
    capacity_wh: float
    max_charge_w: float | np.ndarray
    max_discharge_w: float | np.ndarray
    eta_charge: float = 0.95
    eta_discharge: float = 0.95
    soc_min: float = 0.1
    soc_max: float = 0.95
    soc0: float = 0.5
    soc_end: float | None = None
    degradation_cost_per_kwh: float = 0.0
    floor: np.ndarray | float = 0.0


@dataclass
class EvSession:
    """One EV plugged into ``charger_id`` from ``arrival_slot`` (incl.) to
    ``departure_slot`` (excl.), needing ``energy_wh`` [Wh] at the charger, charged at 0 or
    between ``min_w`` and ``max_w`` [W]."""

    charger_id: str
    arrival_slot: int
    departure_slot: int
    energy_wh: float
    min_w: float = 0.0
    max_w: float = 7400.0


@dataclass
class GridParams:
    """Connection limits [W], both >= 0."""

    import_limit_w: float
    export_limit_w: float


@dataclass
class Prices:
    """Buy / sell prices [currency/kWh] per slot, grid CO2 intensity [kg/kWh] and the CO2
    price [currency/kg] charged on imported energy."""

    buy: np.ndarray | float
    sell: np.ndarray | float
    co2_kg_per_kwh: np.ndarray | float = 0.0
    co2_price_per_kg: float = 0.0


@dataclass
class VppCommitments:
    """Awarded aggregator capacity per slot [W] and active dispatch.

    ``award_up_w`` (more discharge / less charge) and ``award_down_w`` (more charge) must stay
    deliverable for ``duration_s`` from any slot. ``dispatch_w`` (NaN = none; > 0 discharge)
    is the requested net battery output of the site in that slot.
    """

    award_up_w: np.ndarray | float = 0.0
    award_down_w: np.ndarray | float = 0.0
    dispatch_w: np.ndarray | None = None
    duration_s: float = 3600.0


@dataclass
class MarketPrices:
    """Aggregator prices per *offer* slot (``OfferParams.slot_s``, 30 min), length
    ``n // (offer slot / plan slot)``; a scalar means "the same in every offer slot".

    ``capacity_up`` / ``capacity_down`` [currency/kW per offer slot] are paid for the ΔkW held,
    dispatched or not; ``energy_up`` / ``energy_down`` [currency/kWh] per kWh dispatched;
    ``spot`` [currency/kWh] is the day-ahead price, carried to the export (the energy plan is
    priced by :class:`Prices`). Prices must be >= 0 (:class:`PriceError` otherwise); NaN means
    "no price": that slot gets no offer.
    """

    capacity_up: np.ndarray | float
    capacity_down: np.ndarray | float
    energy_up: np.ndarray | float = 0.0
    energy_down: np.ndarray | float = 0.0
    spot: np.ndarray | float = np.nan


@dataclass
class OfferParams:
    """Co-optimised aggregator offers (see :func:`optimizer.model_vpp.add_offers`).

    Parameters
    ----------
    prices : MarketPrices
    slot_s : int
        Offer slot length [s], a whole multiple of the plan slot (:data:`MARKET_SLOT_S` for 30-min ΔkW slots).
    duration_s : float
        How long an activation lasts once called [s]; offers must be deliverable for it.
    activation_ratio : float
        Expected fraction of the offered ΔkW·slot actually dispatched [-]: expected energy
        revenue and the expected SoC effect both scale with it.
    pv_low_w, pv_high_w, load_low_w, load_high_w : ndarray or None
        Pessimistic forecasts per plan slot [W] at the configured confidence (e.g. p10/p90
        from :func:`optimizer.uncertainty.forecast_quantiles`); ``None`` = the p50 forecast.
        Up offers are sized against low PV + high load, down offers against high PV + low load.
    blocked : dict[int, str]
        Offer slots that must not be offered, with the reason (storm mode, JMA warning, …).
    """

    prices: MarketPrices
    slot_s: int = MARKET_SLOT_S
    duration_s: float = 3600.0
    activation_ratio: float = 0.2
    pv_low_w: np.ndarray | None = None
    pv_high_w: np.ndarray | None = None
    load_low_w: np.ndarray | None = None
    load_high_w: np.ndarray | None = None
    blocked: dict[int, str] = field(default_factory=dict)

    def steps(self, plan_slot_s: int) -> int:
        """Plan slots per offer slot."""
        k, r = divmod(self.slot_s, plan_slot_s)
        if k < 1 or r:
            raise PriceError(f"offer slot {self.slot_s} s is not a whole multiple of the plan slot {plan_slot_s} s")
        return k


@dataclass
class DeferrableLoad:
    """On/off load of ``power_w`` [W] that must run ``total_steps`` whole slots in total."""

    id: str
    power_w: float
    total_steps: int


@dataclass
class SolveOptions:
    """Solver settings.

    ``recovery_penalty_per_kwh`` prices each kWh·slot of SoC below the reserve floor when the
    floor cannot be met (soc0 below it, or the floor rises faster than the battery can
    charge). ``allow_simultaneous``: ``None`` decides automatically whether binaries forbidding
    simultaneous charge/discharge and import/export are needed (see ``optimizer.model``);
    ``True`` never adds them; ``False`` always does.
    """

    solver: Literal["highs", "cbc"] = "highs"
    time_limit_s: float = 10.0
    mip_gap: float = 1e-4
    recovery_penalty_per_kwh: float = 10.0
    ev_unmet_penalty_per_kwh: float = 5.0
    unserved_penalty_per_kwh: float = 100.0
    allow_simultaneous: bool | None = None
    pv_curtailable: bool = True


@dataclass(frozen=True)
class DemandParams:
    """Demand charge state (:mod:`optimizer.model_demand`): ``peak0_w`` the month's highest
    30-min average import so far [W]; ``price_per_kw`` what one kW above it costs [currency/kW]."""

    peak0_w: float
    price_per_kw: float


@dataclass
class Problem:
    """Everything one site plan needs. ``pv_w`` and ``load_w`` are forecasts [W] per slot;
    ``outage`` marks slots planned islanded (no grid, floor released)."""

    horizon: Horizon
    pv_w: np.ndarray
    load_w: np.ndarray
    batteries: tuple[BatteryParams, ...] | list[BatteryParams] = ()
    evs: tuple[EvSession, ...] | list[EvSession] = ()
    grid: GridParams = field(default_factory=lambda: GridParams(1e9, 1e9))
    prices: Prices = field(default_factory=lambda: Prices(0.0, 0.0))
    vpp: VppCommitments | None = None
    deferrable: tuple[DeferrableLoad, ...] | list[DeferrableLoad] = ()
    outage: np.ndarray | None = None
    offers: OfferParams | None = None
    options: SolveOptions = field(default_factory=SolveOptions)
    #: joint PV / load scenarios (row 0 = ``pv_w`` / ``load_w``): with more than one,
    #: :func:`optimizer.solve.solve` plans over all of them (:mod:`optimizer.solve_scenarios`)
    scenarios: Scenarios | None = None
    demand: DemandParams | None = None  #: peak shaving (高圧 demand charge); None = no demand charge

    def cleaned(self) -> "Problem":
        """Copy with every series as a float array of length ``n``: NaN, ±inf and negative
        forecasts become 0 (NaN prices become the series median), each repair warned once."""
        n = self.horizon.n
        p = self.prices
        vpp = self.vpp
        if vpp is not None:
            disp = None
            if vpp.dispatch_w is not None:
                disp = np.broadcast_to(np.asarray(vpp.dispatch_w, float), (n,)).copy()
            vpp = dataclasses.replace(
                vpp,
                award_up_w=clean_forecast(vpp.award_up_w, n, "award_up_w"),
                award_down_w=clean_forecast(vpp.award_down_w, n, "award_down_w"),
                dispatch_w=disp,
            )
        bats = []
        for b in self.batteries:
            floor = np.broadcast_to(np.asarray(b.floor, float), (n,)).copy()
            if not np.all(np.isfinite(floor)):
                warnings.warn(f"{b.id}: non-finite floor set to soc_min", ForecastWarning)
                floor[~np.isfinite(floor)] = b.soc_min
            bats.append(dataclasses.replace(b, floor=floor))
        outage = (
            np.zeros(n, bool)
            if self.outage is None
            else np.broadcast_to(np.asarray(self.outage, bool), (n,)).copy()
        )
        return dataclasses.replace(
            self,
            pv_w=clean_forecast(self.pv_w, n, "pv_w"),
            load_w=clean_forecast(self.load_w, n, "load_w"),
            batteries=tuple(bats),
            evs=tuple(self.evs),
            deferrable=tuple(self.deferrable),
            prices=dataclasses.replace(
                p,
                buy=_clean_price(p.buy, n, "buy"),
                sell=_clean_price(p.sell, n, "sell"),
                co2_kg_per_kwh=clean_forecast(p.co2_kg_per_kwh, n, "co2_kg_per_kwh"),
            ),
            vpp=vpp,
            outage=outage,
            offers=_clean_offers(self.offers, self.horizon, outage) if self.offers is not None else None,
        )


def _offer_prices(x, m: int, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 0:
        a = np.full(m, float(a))
    a = a.ravel()
    if a.size != m:
        raise PriceError(f"{name}: {a.size} prices for {m} offer slots")
    if np.any(a < 0):
        raise PriceError(f"{name}: negative price in offer slot {int(np.argmax(a < 0))}")
    return a.copy()


def _clean_offers(o: OfferParams, h: Horizon, outage: np.ndarray) -> OfferParams:
    """Offer section with price arrays of one value per offer slot and every no-offer slot
    (missing price, outage, zero capacity price) listed in ``blocked`` with its reason."""
    k = o.steps(h.slot_s)
    m = h.n // k
    pr = o.prices
    prices = MarketPrices(*(_offer_prices(getattr(pr, f), m, f) for f in
                            ("capacity_up", "capacity_down", "energy_up", "energy_down")),
                          spot=np.broadcast_to(np.asarray(pr.spot, float), (m,)).copy())
    if not 0 <= o.activation_ratio <= 1 or o.duration_s <= 0:
        raise ValueError("activation_ratio must be in [0, 1] and duration_s > 0")
    blocked = dict(o.blocked)
    for j in range(m):
        if j in blocked:
            continue
        if np.any(outage[j * k:(j + 1) * k]):
            blocked[j] = "planned outage"
        elif not (np.isfinite(prices.capacity_up[j]) or np.isfinite(prices.capacity_down[j])):
            blocked[j] = "no capacity price"
    opt = {}
    for f in ("pv_low_w", "pv_high_w", "load_low_w", "load_high_w"):
        v = getattr(o, f)
        opt[f] = None if v is None else clean_forecast(v, h.n, f)
    return dataclasses.replace(o, prices=prices, blocked=blocked, **opt)


def _fit_length(x: np.ndarray | float, n: int, name: str) -> np.ndarray:
    """A fresh float array of length ``n``: scalars broadcast, a short series padded with its
    last value, a long one truncated (with one :class:`ForecastWarning`)."""
    a = np.asarray(x, dtype=float)
    if a.ndim == 0:
        a = np.full(n, float(a))
    a = a.ravel()
    if a.size != n:
        warnings.warn(f"{name}: length {a.size} != {n}, padded/truncated", ForecastWarning)
        pad = a[-1] if a.size else 0.0
        a = np.concatenate([a[:n], np.full(max(0, n - a.size), pad)])
    else:
        a = a.copy()
    return a


def clean_forecast(x: np.ndarray | float, n: int, name: str = "series") -> np.ndarray:
    """A non-negative float array of length ``n`` [same unit as ``x``].

    NaN/inf and negative values become 0; a short series is padded with its last value, a
    long one truncated. Each kind of repair emits one :class:`ForecastWarning`.
    """
    a = _fit_length(x, n, name)
    bad = ~np.isfinite(a)
    if bad.any():
        warnings.warn(f"{name}: {int(bad.sum())} NaN/inf values set to 0", ForecastWarning)
        a[bad] = 0.0
    neg = a < 0
    if neg.any():
        warnings.warn(f"{name}: {int(neg.sum())} negative values set to 0", ForecastWarning)
        a[neg] = 0.0
    return a


def _clean_price(x: np.ndarray | float, n: int, name: str) -> np.ndarray:
    """Prices may be negative; NaN/inf are replaced by the median of the finite values."""
    a = _fit_length(x, n, name)
    bad = ~np.isfinite(a)
    if bad.any():
        fill = float(np.median(a[~bad])) if (~bad).any() else 0.0
        warnings.warn(f"{name}: {int(bad.sum())} NaN/inf prices set to {fill}", ForecastWarning)
        a[bad] = fill
    return a


def storm_floor(
    base: float | np.ndarray, target: float, deadline_slot: int, ramp_slots: int, n: int
) -> np.ndarray:
    """Reserve floor [fraction] per slot for storm mode.

    The floor equals ``base`` until ``deadline_slot - ramp_slots``, rises linearly to
    ``target`` at ``deadline_slot`` and stays there (never below ``base``).

    >>> storm_floor(0.2, 0.8, deadline_slot=4, ramp_slots=2, n=6).round(2).tolist()
    [0.2, 0.2, 0.2, 0.5, 0.8, 0.8]
    """
    base_a = np.broadcast_to(np.asarray(base, float), (n,))
    t = np.arange(n)
    ramp = max(int(ramp_slots), 0)
    start = deadline_slot - ramp
    frac = np.clip((t - start) / ramp, 0.0, 1.0) if ramp else (t >= deadline_slot).astype(float)
    return np.maximum(base_a, base_a + frac * (target - base_a))
