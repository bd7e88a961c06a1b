"""Wait for a condition instead of sleeping a fixed time.

A test that sleeps "long enough" is slow when the machine is idle and flaky when it is busy;
these helpers poll the condition the test really awaits. With a ``clock`` (the test's
simulated clock: a ``SimClock``, a ``Runtime``, anything with ``now()`` or a ``() -> datetime``)
``timeout_s`` is counted in simulated seconds, so a 60× site waits for simulated minutes, not
guessed wall seconds; ``wall_timeout_s`` bounds the wait on the wall clock either way, so a
stopped or manual clock cannot hang a test.
"""
from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

#: Upper bound on any wait with a simulated clock [s of wall time].
DEFAULT_WALL_TIMEOUT_S = 60.0


def _now_fn(clock) -> Callable[[], datetime]:
    return clock.now if hasattr(clock, "now") else clock


class _Deadline:
    def __init__(self, timeout_s: float, clock, wall_timeout_s: float | None) -> None:
        self.now = _now_fn(clock) if clock is not None else None
        self.sim_end = self.now().timestamp() + timeout_s if self.now is not None else None
        wall = timeout_s if clock is None else DEFAULT_WALL_TIMEOUT_S
        self.wall_end = time.monotonic() + (wall if wall_timeout_s is None else wall_timeout_s)
        self.where = "wall"  # which clock ended the wait

    def passed(self) -> bool:
        if time.monotonic() >= self.wall_end:
            self.where = "wall"
            return True
        self.where = "simulated"
        return self.sim_end is not None and self.now().timestamp() >= self.sim_end

    def fail(self, what: str, last: Any) -> AssertionError:
        return AssertionError(f"timed out ({self.where} clock) waiting for {what or 'the condition'}; "
                              f"last value {last!r}")


async def wait_until(predicate: Callable[[], Any], timeout_s: float = 10.0, *, clock=None,
                     interval_s: float = 0.05, wall_timeout_s: float | None = None, what: str = "") -> Any:
    """Poll ``predicate`` until it returns a truthy value, and return that value.

    Parameters
    ----------
    predicate : callable
        ``() -> value`` or ``async () -> value``; checked at once, then every ``interval_s``.
    timeout_s : float
        Longest wait [s]: simulated seconds on ``clock`` when given, else wall seconds.
    clock : optional
        The test's simulated clock (``now()`` or a ``() -> datetime``).
    interval_s : float
        Wall time between checks [s].
    wall_timeout_s : float, optional
        Wall-clock bound [s]; default ``timeout_s`` without a clock, 60 s with one.
    what : str
        Names the condition in the failure message.

    Raises
    ------
    AssertionError
        When the time runs out (the message shows the last value of the predicate).
    """
    deadline = _Deadline(timeout_s, clock, wall_timeout_s)
    while True:
        got = predicate()
        if inspect.isawaitable(got):
            got = await got
        if got:
            return got
        if deadline.passed():
            raise deadline.fail(what, got)
        await asyncio.sleep(interval_s)


def wait_until_sync(predicate: Callable[[], Any], timeout_s: float = 10.0, *, clock=None,
                    interval_s: float = 0.05, wall_timeout_s: float | None = None, what: str = "") -> Any:
    """:func:`wait_until` for synchronous tests (e.g. a site running in another thread)."""
    deadline = _Deadline(timeout_s, clock, wall_timeout_s)
    while True:
        got = predicate()
        if got:
            return got
        if deadline.passed():
            raise deadline.fail(what, got)
        time.sleep(interval_s)
