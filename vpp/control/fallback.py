"""Rule-based self-consumption with the reserve held: the controller's fallback when the
plan is missing, stale, infeasible or timed out, or when its inputs are stale.

Rule (per battery, share of the site imbalance by rated power): charge from PV surplus
(grid < 0), discharge to cover import (grid > 0); the reserve layer above it keeps the
floor. Pure functions; the reason it is engaged is raised as an alarm by the loop.
"""
from __future__ import annotations

from collections.abc import Sequence

from vpp.control.bounds import Proposal


def self_consumption_w(grid_w: float, battery_w: float, deadband_w: float = 50.0) -> float:
    """Battery setpoint [W] (> 0 discharge) that would bring the grid exchange to zero.

    ``grid_w`` [W] (> 0 import) is measured with the battery at ``battery_w`` [W], so the
    site imbalance seen without the battery is ``grid_w + battery_w``. Within ``deadband_w``
    the battery idles (avoids chattering on meter noise).
    """
    target = grid_w + battery_w
    return 0.0 if abs(target) < deadband_w else target


def split_by_rating(total_w: float, ratings_w: Sequence[tuple[float, float]]) -> list[float]:
    """Split a site battery setpoint [W] over batteries in proportion to their rated
    discharge (``total_w`` > 0) or charge (< 0) power; ``ratings_w`` = [(charge, discharge)]."""
    key = 1 if total_w > 0 else 0
    total_rating = sum(r[key] for r in ratings_w)
    if total_rating <= 0:
        return [0.0 for _ in ratings_w]
    return [total_w * r[key] / total_rating for r in ratings_w]


def fallback_proposal(setpoint_w: float, why: str) -> Proposal:
    return Proposal("fallback", setpoint_w, reason=f"self-consumption rule ({why})")
