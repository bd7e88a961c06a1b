"""Wall-clock steps: alarm ``clock``; leases and job cadence on the monotonic clock."""
from datetime import datetime, timedelta, timezone

from simulators.clock import SimClock
from vpp.control.clockwatch import ClockWatch
from vpp.control.loop import Lease

T0 = datetime(2026, 1, 10, 3, 0, tzinfo=timezone.utc)


def test_clock_watch_sees_steps_both_ways():
    clock = SimClock(T0, speed=0)
    w = ClockWatch(120.0, clock.monotonic)
    assert w.check(clock.now()) == 0.0
    clock.advance(60)
    assert abs(w.check(clock.now())) < 1e-6  # time passing is no step
    clock.step_wall(-3600)
    s = w.check(clock.now())
    assert abs(s + 3600) < 1e-6 and w.exceeded(s)
    clock.advance(60)
    clock.step_wall(100)
    assert not w.exceeded(w.check(clock.now()))  # below the alarm threshold


def test_sim_clock_wall_step_leaves_steady_time():
    clock = SimClock(T0, speed=0)
    clock.advance(10)
    clock.step_wall(-3600)
    assert clock.monotonic() == 10 and clock.now() == T0 + timedelta(seconds=10 - 3600)


def test_lease_expiry_on_the_monotonic_clock():
    lease = Lease("bat1", 1000.0, "plan", T0, T0 + timedelta(seconds=180), expires_mono=1180.0)
    # the wall clock stepped back an hour: the lease still ends 180 s after it was written
    assert lease.expired(mono_now=1180.0, now=T0 - timedelta(hours=1))
    assert not lease.expired(mono_now=1100.0, now=T0 + timedelta(hours=1))
    assert Lease("b", 0.0, "plan", T0, T0 + timedelta(seconds=180)).expired(now=T0 + timedelta(seconds=181))


async def test_guard_reschedules_the_jobs_after_a_backward_step():
    import asyncio

    from tests.control.test_loop import controller
    from vpp.control.scheduler import build_scheduler, guard_clock

    ctl = controller()
    sched = build_scheduler(ctl, first_run_s=None)  # every job one interval away
    real = datetime.now(timezone.utc)
    wall = {"t": real}
    task = asyncio.create_task(guard_clock(sched, ctl, interval_s=0.01, wall=lambda: wall["t"]))
    await asyncio.sleep(0.05)
    assert not ctl.alarms.is_active("clock")
    wall["t"] = real - timedelta(hours=1)  # NTP steps the clock back an hour
    for _ in range(100):
        await asyncio.sleep(0.01)
        if ctl.alarms.is_active("clock"):
            break
    task.cancel()
    assert ctl.alarms.is_active("clock")
    due = {j.id: j.next_run_time for j in sched.get_jobs()}
    assert due["forecast"] <= due["plan"] <= due["dispatch"] <= wall["t"] + timedelta(seconds=3)
