"""The one set of setpoint rules every protocol's driver applies before it writes anything.

Each function raises :class:`SetpointError` naming the device and the limit, or returns the
checked value. Battery power [W] > 0 = discharge, < 0 = charge; PV limits [W]; EV current [A].
"""
from __future__ import annotations

import math
from typing import Any

from drivers.protocols import Quality


class SetpointError(ValueError):
    """A setpoint was refused before any write; ``str()`` gives the reason."""


def finite(name: str, x: float) -> float:
    x = float(x)
    if not math.isfinite(x):
        raise SetpointError(f"{name} must be finite, got {x}")
    return x


def check_revert(revert_s: float | None) -> None:
    if revert_s is not None and (not math.isfinite(revert_s) or revert_s < 0):
        raise SetpointError(f"revert_s must be >= 0 s, got {revert_s}")


def battery_power(dev_id: str, ratings: Any, watts: float, soc: float | None, latest: Any) -> float:
    """``watts`` within the power ratings, and for a non-zero setpoint a trusted SoC
    (``latest`` snapshot neither STALE nor BAD) away from the limit it moves towards."""
    r = ratings
    if watts > (r.max_discharge_w or 0):
        raise SetpointError(f"{dev_id}: discharge {watts:.0f} W exceeds max_discharge_w {r.max_discharge_w:.0f} W")
    if -watts > (r.max_charge_w or 0):
        raise SetpointError(f"{dev_id}: charge {-watts:.0f} W exceeds max_charge_w {r.max_charge_w:.0f} W")
    if watts != 0 and soc is None:
        raise SetpointError(f"{dev_id}: SoC unknown, refusing a non-zero setpoint")
    q = latest.quality if latest is not None else Quality.GOOD
    if watts != 0 and q in (Quality.STALE, Quality.BAD):
        raise SetpointError(f"{dev_id}: latest readings are {q.value} ({latest.reason}); SoC cannot be trusted")
    if watts > 0 and soc <= r.soc_min:
        raise SetpointError(f"{dev_id}: SoC {soc:.3f} at or below soc_min {r.soc_min}, cannot discharge")
    if watts < 0 and soc >= r.soc_max:
        raise SetpointError(f"{dev_id}: SoC {soc:.3f} at or above soc_max {r.soc_max}, cannot charge")
    return watts


def power_limit(dev_id: str, ratings: Any, watts: float) -> float:
    rating = ratings.power_w or 0.0
    if not 0.0 <= watts <= rating:
        raise SetpointError(f"{dev_id}: power limit {watts:.0f} W outside 0..{rating:.0f} W")
    return watts


def current_limit(dev_id: str, ratings: Any, amps: float) -> float:
    lo, hi = ratings.min_current_a or 0.0, ratings.max_current_a or 0.0
    if amps != 0 and not lo <= amps <= hi:
        raise SetpointError(f"{dev_id}: current {amps:g} A outside 0 or {lo:g}..{hi:g} A")
    return amps
