"""Site optimiser: inputs (dataclasses) → ``build`` (``add_*`` constraint functions) →
``solve`` → :class:`Schedule`; flexibility per 30-min slot; fleet planning.

The only package that imports PuLP; nothing PuLP-typed leaves it.
"""

from .inputs import (
    BatteryParams,
    DeferrableLoad,
    EvSession,
    ForecastWarning,
    GridParams,
    Horizon,
    Prices,
    Problem,
    SolveOptions,
    VppCommitments,
    clean_forecast,
    storm_floor,
)
from .schedule import Schedule, SolverInfo
from .solve import SolveError, solve, validate

__all__ = [
    "BatteryParams",
    "DeferrableLoad",
    "EvSession",
    "ForecastWarning",
    "GridParams",
    "Horizon",
    "Prices",
    "Problem",
    "Schedule",
    "SolveError",
    "SolveOptions",
    "SolverInfo",
    "VppCommitments",
    "clean_forecast",
    "solve",
    "storm_floor",
    "validate",
]
