"""Cadence of the control loop: APScheduler 3 wiring, or a simulated-clock driver.

Real time: :func:`build_scheduler` returns an ``AsyncIOScheduler`` running the controller's
jobs (forecast hourly, plan every ``plan_interval_s``, dispatch every ``dispatch_interval_s``;
never overlapping, missed runs coalesced). All three are coroutines on the event loop; the
forecast and the plan compute in a worker thread under the controller's planning lock
(:meth:`~vpp.control.loop.Controller.replan`), so a slow solve never delays dispatch and
shared controller state changes only on the loop.

Simulated time: APScheduler's triggers follow the wall clock, so accelerated runs (tests,
demos, scenario replays) use :func:`run_simulated` instead, which calls the *same* job
methods in order at simulated instants and lets the caller advance the simulation between
dispatch steps. The jobs read time only from the controller's clock, so both paths behave
alike.
"""
from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from vpp.control.bounds import Decision
from vpp.control.clockwatch import CLOCK_KEY, ClockWatch
from vpp.control.loop import Controller

FORECAST_INTERVAL_S = 3600.0


def build_scheduler(ctl: Controller, *, first_run_s: tuple[float, float, float] | None = (0.0, 5.0, 10.0),
                    speed: float = 1.0) -> AsyncIOScheduler:
    """Scheduler with the three jobs of ``ctl`` (call ``.start()`` inside a running loop).

    ``first_run_s``: wall delays [s] of the first forecast, plan and dispatch runs after now
    (in that order, so the first dispatch already has a plan); ``None`` waits one interval.
    ``speed``: simulated seconds per wall second of ``ctl.clock`` (a running
    :class:`simulators.clock.SimClock`); every interval is divided by it, so the jobs keep
    their cadence in the controller's time (at 60× the 60 s dispatch runs every wall second).
    """
    if not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    o = ctl.config.optimiser
    sched = AsyncIOScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1,
                                                          "misfire_grace_time": 30})
    now = datetime.now(timezone.utc)  # APScheduler runs on the wall clock
    first = [now + timedelta(seconds=s) for s in first_run_s] if first_run_s else [None] * 3
    sched.add_job(ctl.refresh_forecast, IntervalTrigger(seconds=FORECAST_INTERVAL_S / speed), id="forecast",
                  next_run_time=first[0])
    sched.add_job(ctl.replan, IntervalTrigger(seconds=o.plan_interval_s / speed), id="plan",
                  next_run_time=first[1])
    sched.add_job(ctl.dispatch_job, IntervalTrigger(seconds=o.dispatch_interval_s / speed), id="dispatch",
                  next_run_time=first[2])
    return sched


def reschedule_now(sched: AsyncIOScheduler, now: datetime, stagger_s: float = 1.0) -> int:
    """Make every job of ``sched`` due at ``now`` (one after the other, ``stagger_s`` [s]
    apart, forecast before plan before dispatch); returns how many."""
    jobs = sorted(sched.get_jobs(), key=lambda j: {"forecast": 0, "plan": 1, "dispatch": 2}.get(j.id, 3))
    for i, job in enumerate(jobs):
        job.modify(next_run_time=now + timedelta(seconds=i * stagger_s))
    return len(jobs)


async def guard_clock(sched: AsyncIOScheduler, ctl: Controller, *, interval_s: float = 5.0,
                      wall: Callable[[], datetime] | None = None, mono: Callable[[], float] = time.monotonic) -> None:
    """Run forever: every ``interval_s`` monotonic seconds compare the wall clock APScheduler
    follows with the monotonic clock; on a step beyond ``ctl.config.clock.step_alarm_s`` raise
    alarm ``clock`` and make every job due now (after a backward step APScheduler would
    otherwise wait out the step; after a forward one it would skip the missed runs)."""
    wall = wall or (lambda: datetime.now(timezone.utc))
    watch = ClockWatch(ctl.config.clock.step_alarm_s, mono)
    watch.check(wall())
    while True:
        await asyncio.sleep(interval_s)
        now = wall()
        step = watch.check(now)
        if watch.exceeded(step):
            n = reschedule_now(sched, now)
            ctl.alarms.raise_(CLOCK_KEY, f"scheduler wall clock stepped {step:+.0f} s against the monotonic "
                                         f"clock; {n} jobs rescheduled", ctl.now())


async def run_simulated(ctl: Controller, until: datetime, advance: Callable[[float], Any], *,
                        refresh: Callable[[], Awaitable[None] | None] | None = None,
                        on_step: Callable[[datetime, list[Decision]], None] | None = None) -> int:
    """Run the jobs at simulated time until ``ctl.now() >= until``; returns the step count.

    Each step (one ``dispatch_interval_s``): ``refresh()`` (e.g. poll the devices once so the
    snapshots are current), the forecast job when due (hourly), the plan job when due, the
    dispatch job, ``on_step(now, decisions)``, then ``advance(dispatch_interval_s)`` which
    must move the controller's clock (e.g. ``SimulatedSite.step``).
    """
    o = ctl.config.optimiser
    step = float(o.dispatch_interval_s)
    # job cadence on the clock's monotonic seconds when it has them (a wall-clock step must
    # neither stall nor repeat the jobs); else on its wall time
    mono = getattr(ctl.clock, "monotonic", None)

    def tick() -> float:
        return float(mono()) if callable(mono) else ctl.now().timestamp()

    next_forecast = next_plan = tick()
    steps = 0
    while ctl.now() < until:
        if refresh is not None:
            r = refresh()
            if inspect.isawaitable(r):
                await r
        now, t = ctl.now(), tick()
        if t >= next_forecast:
            ctl.forecast_job()
            next_forecast = t + FORECAST_INTERVAL_S
        if t >= next_plan:
            ctl.plan_job()
            next_plan = t + o.plan_interval_s
        decisions = await ctl.dispatch_job()
        if on_step is not None:
            on_step(now, decisions)
        r = advance(step)
        if inspect.isawaitable(r):
            await r
        await asyncio.sleep(0)
        steps += 1
    return steps


class SimulatedTelemetry:
    """Fleet view for simulated-time runs: polls every device once per :meth:`refresh` (so
    the readings follow the simulation step) and hands each snapshot to ``sink`` (e.g.
    ``TelemetryPipeline.submit``).

    Build the fleet with the simulated clock (``DriverFleet(config, clock=clock)``) so its
    snapshots already carry simulated time. A fleet without a clock stamps wall time, which
    would make every reading look stale or from the future to a controller on simulated
    time; its snapshots are re-stamped here with ``clock.now()``.

    Implements the :class:`vpp.control.loop.Fleet` protocol.
    """

    def __init__(self, fleet: Any, clock: Any = None, sink: Callable[[Any], None] | None = None) -> None:
        self.fleet, self.sink = fleet, sink
        self.clock = clock if getattr(fleet, "clock", None) is None else None
        if self.clock is None and getattr(fleet, "clock", None) is None:
            raise ValueError("SimulatedTelemetry needs a clock: on the fleet or as an argument")
        self._latest: dict[str, Any] = {}

    async def refresh(self) -> None:
        now = self.clock.now() if self.clock is not None else None
        for dev_id, snap in (await self.fleet.poll_once()).items():
            if snap is None:
                continue
            if now is not None:
                snap = replace(snap, ts=now)
                self._latest[dev_id] = snap
            if self.sink is not None:
                self.sink(snap)

    def latest(self, device_id: str) -> Any:
        if self.clock is None:
            return self.fleet.latest(device_id)
        return self._latest.get(device_id)

    def device(self, device_id: str) -> Any:
        return self.fleet.device(device_id)
