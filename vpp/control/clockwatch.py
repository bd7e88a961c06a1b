"""Wall clock vs monotonic clock: notice a clock step (NTP, RTC reset) when it happens.

Dispatch windows, overrides and storm deadlines are wall-clock times (they come from people
and aggregators); durations (leases, job intervals) are measured on the monotonic clock. A
step of the wall clock shows as the wall time elapsed between two checks differing from the
monotonic time elapsed; more than ``step_alarm_s`` [s] raises alarm ``clock`` (what the
step did is then visible: readings and plans from the "future" are stale, see
:mod:`vpp.control.freshness`, and completed dispatches stay completed).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

#: Alarm key of a wall-clock step.
CLOCK_KEY = "clock"


def monotonic_of(clock: object) -> Callable[[], float]:
    """The monotonic seconds of ``clock`` [s]: its ``monotonic()`` when it has one (a
    simulated clock's own steady time), else :func:`time.monotonic`."""
    mono = getattr(clock, "monotonic", None)
    return mono if callable(mono) else time.monotonic


@dataclass
class ClockWatch:
    """Compare wall and monotonic time between :meth:`check` calls.

    ``mono`` gives monotonic seconds in the wall clock's seconds (a simulated clock running
    ``speed`` times faster supplies its own).
    """

    step_alarm_s: float = 120.0
    mono: Callable[[], float] = time.monotonic
    _last: tuple[datetime, float] | None = None

    def check(self, wall: datetime) -> float:
        """Step [s] of the wall clock since the last check (> 0 forward, < 0 back; 0 the
        first time)."""
        m = self.mono()
        last, self._last = self._last, (wall, m)
        if last is None:
            return 0.0
        return (wall - last[0]).total_seconds() - (m - last[1])

    def exceeded(self, step_s: float) -> bool:
        return abs(step_s) > self.step_alarm_s
