"""Site optimiser: inputs (dataclasses) → ``build`` (``add_*`` constraint functions:
energy balance in ``model``, VPP commitments and offers in ``model_vpp``) → ``solve`` →
:class:`Schedule`; flexibility per 30-min slot; fleet planning (``optimizer.fleet``);
aggregator offers co-optimised with the energy plan (``Problem.offers`` → ``Schedule.offers``).

The only package that imports PuLP; nothing PuLP-typed leaves it.
"""

from .inputs import (
    BatteryParams,
    DeferrableLoad,
    DemandParams,
    EvSession,
    ForecastWarning,
    GridParams,
    Horizon,
    MarketPrices,
    OfferParams,
    PriceError,
    Prices,
    Problem,
    SolveOptions,
    VppCommitments,
    clean_forecast,
    storm_floor,
)
from .scenarios import Scenarios, sample_scenarios
from .schedule import Offer, Schedule, SolverInfo
from .uncertainty import forecast_quantiles
from .solve import SolveError, solve, validate

__all__ = [
    "BatteryParams",
    "DeferrableLoad",
    "DemandParams",
    "EvSession",
    "ForecastWarning",
    "GridParams",
    "Horizon",
    "MarketPrices",
    "Offer",
    "OfferParams",
    "PriceError",
    "Prices",
    "Problem",
    "Scenarios",
    "Schedule",
    "SolveError",
    "SolveOptions",
    "SolverInfo",
    "VppCommitments",
    "clean_forecast",
    "forecast_quantiles",
    "sample_scenarios",
    "solve",
    "storm_floor",
    "validate",
]
