"""One plan at a time: every planning run holds the controller's planning lock, a result
planned from older inputs than the plan in force is discarded, and shared controller state
(plan, alarms, EV plugs) changes only on the event loop."""
from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import optimizer
from tests.control.test_loop import T0, controller, set_readings


class SlowSolver:
    """The real solver, slowed down while ``hold`` is clear; counts concurrent solves."""

    def __init__(self) -> None:
        self.hold, self.entered = threading.Event(), threading.Event()
        self.running = self.most = 0
        self.starts: list = []
        self._lock = threading.Lock()

    def __call__(self, problem):
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.starts.append(problem.start if hasattr(problem, "start") else None)
        self.entered.set()
        try:
            self.hold.wait(10)
            time.sleep(0.05)
            return optimizer.solve(problem)
        finally:
            with self._lock:
                self.running -= 1


def two_images(ctl):
    old = ctl.image()
    ctl.clock.t = T0 + timedelta(seconds=60)
    set_readings(ctl, soc=0.7)
    return old, ctl.image()


async def _wait(event: threading.Event) -> None:
    for _ in range(500):
        if event.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the solver was never entered")


async def test_concurrent_replans_newest_inputs_win_when_the_newer_solves_first():
    solver = SlowSolver()
    ctl = controller(solve=solver)
    ctl.forecast_job()
    old, new = two_images(ctl)
    loop_thread = threading.current_thread()
    seen = []
    ctl.alarms.subscribe(lambda a: seen.append((a.key, threading.current_thread())))

    def no_commitments(start, horizon):
        raise RuntimeError("ledger busy")

    ctl.commitments_source = no_commitments  # the planning run raises an alarm
    newer = asyncio.create_task(ctl.replan(new))
    await _wait(solver.entered)
    older = asyncio.create_task(ctl.replan(old))  # waits for the lock, then solves older inputs
    await asyncio.sleep(0.05)
    solver.hold.set()
    got_new, got_old = await asyncio.gather(newer, older)
    assert got_new is not None and got_old is None  # the older result is discarded
    assert ctl.plan.made_at == new.at and ctl.plan.problem.batteries[0].soc0 == 0.7
    assert solver.most == 1 and len(solver.starts) == 2  # one plan at a time
    assert "commitments" in {k for k, _ in seen}
    assert all(t is loop_thread for _, t in seen)  # alarms change on the loop only


async def test_concurrent_replans_newest_inputs_win_when_the_older_solves_first():
    solver = SlowSolver()
    ctl = controller(solve=solver)
    ctl.forecast_job()
    old, new = two_images(ctl)
    first = asyncio.create_task(ctl.replan(old))
    await _wait(solver.entered)
    second = asyncio.create_task(ctl.replan(new))
    await asyncio.sleep(0.05)
    solver.hold.set()
    a, b = await asyncio.gather(first, second)
    assert a is not None and b is not None
    assert ctl.plan is b and ctl.plan.made_at == new.at
    assert solver.most == 1


def test_a_plan_from_older_inputs_never_replaces_the_plan_in_force():
    ctl = controller()
    old, new = two_images(ctl)
    in_force = ctl.plan_job(new)
    assert in_force is not None
    assert ctl.plan_job(old) is None and ctl.plan is in_force
    # a failure from older inputs does not raise the plan alarm over a newer plan either
    ctl.solve = lambda p: (_ for _ in ()).throw(optimizer.SolveError("late failure"))
    assert ctl.plan_job(old) is None and not ctl.alarms.is_active("plan")


async def test_the_scheduler_plans_and_forecasts_on_the_loop():
    from vpp.control.scheduler import build_scheduler

    ctl = controller()
    jobs = {j.id: j for j in build_scheduler(ctl).get_jobs()}
    assert asyncio.iscoroutinefunction(jobs["plan"].func) and asyncio.iscoroutinefunction(jobs["forecast"].func)
    fc = await ctl.refresh_forecast()
    assert ctl.forecast is fc
    assert await ctl.replan() is ctl.plan is not None
