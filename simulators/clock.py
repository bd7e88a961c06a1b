"""Simulated clock shared by every simulated device of a site.

Simulated time advances at ``speed`` × wall time from ``start``; ``speed=0`` freezes it so
that only :meth:`SimClock.advance` moves it (manual clock for fast, deterministic tests).
"""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone


class SimClock:
    """A clock whose time is ``start + speed × (wall time elapsed) + manual advances``.

    Parameters
    ----------
    start : datetime, optional
        Simulated time at creation; naive values are taken as UTC. Default: now (UTC).
    speed : float
        Simulated seconds per wall second [-]; 0 means manual (``advance`` only).
    """

    def __init__(self, start: datetime | None = None, speed: float = 1.0) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        if start is None:
            start = datetime.now(timezone.utc)
        elif start.tzinfo is None:
            start = start.replace(tzinfo=timezone.utc)
        self._origin = start.astimezone(timezone.utc)
        self._wall0 = time.monotonic()
        self._offset_s = 0.0
        self._wall_step_s = 0.0  # wall-clock steps (step_wall), not in elapsed_s
        self.speed = float(speed)

    @property
    def manual(self) -> bool:
        return self.speed == 0

    def elapsed_s(self) -> float:
        """Simulated seconds since ``start`` [s]."""
        return self._offset_s + self.speed * (time.monotonic() - self._wall0)

    def now(self) -> datetime:
        """Current simulated wall time (UTC, tz-aware), including any :meth:`step_wall`."""
        return self._origin + timedelta(seconds=self.elapsed_s() + self._wall_step_s)

    def monotonic(self) -> float:
        """Simulated steady time [s]: elapsed seconds, unaffected by :meth:`step_wall`."""
        return self.elapsed_s()

    def step_wall(self, seconds: float) -> datetime:
        """Step the wall time by ``seconds`` [s] (either sign) as an NTP correction would;
        the steady time (:meth:`monotonic`, :meth:`sleep`) goes on unaffected."""
        self._wall_step_s += seconds
        return self.now()

    def advance(self, seconds: float) -> datetime:
        """Move simulated time forward by ``seconds`` [s]; returns the new time."""
        if seconds < 0:
            raise ValueError("cannot advance a clock backwards")
        self._offset_s += seconds
        return self.now()

    async def sleep(self, sim_seconds: float) -> None:
        """Wait ``sim_seconds`` of simulated time.

        With a running clock this is ``sim_seconds / speed`` wall seconds. With a manual
        clock it waits until someone has advanced the clock far enough (polling briefly).
        """
        if sim_seconds <= 0:
            await asyncio.sleep(0)
            return
        if not self.manual:
            await asyncio.sleep(sim_seconds / self.speed)
            return
        target = self.elapsed_s() + sim_seconds
        while self.elapsed_s() < target:
            await asyncio.sleep(0.01)
