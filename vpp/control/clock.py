"""The controller's clock: wall time (UTC) for what happens when, monotonic seconds for how
long (leases, overrides, clock-step detection). Simulated runs pass a
:class:`simulators.clock.SimClock` with the same two methods."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall clock (UTC), with the monotonic clock durations are measured on."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()
