"""When a simulated station's charging profile stops applying (OCPP 1.6 §3.13.2, 2.0.1 K01).

A profile ends at the earlier of its ``validTo`` and ``startSchedule + duration`` (a schedule
without ``startSchedule`` starts when the station receives it). After that the station falls
back: a ``TxProfile`` to the ``TxDefaultProfile``, the default to the station's own maximum.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def profile_end(profile: dict, schedule: dict, received: datetime) -> datetime | None:
    """The instant ``profile`` (with its ``schedule``, snake_case as the ``ocpp`` library hands
    them over) stops applying; ``None``: open-ended. ``received``: the station's clock (UTC)."""
    ends = []
    if schedule.get("duration") is not None:
        start = _when(schedule.get("start_schedule")) or received
        ends.append(start + timedelta(seconds=float(schedule["duration"])))
    if profile.get("valid_to") is not None:
        ends.append(_when(profile["valid_to"]))
    return min(ends) if ends else None
