"""Negative ages (the clock stepped back) are stale, beyond a small tolerance."""
from datetime import datetime, timedelta, timezone

from drivers.protocols import DeviceKind, Snapshot
from vpp.control.freshness import future_tolerance_s, lost, plan_fresh, usable

T0 = datetime(2026, 1, 10, 3, 0, tzinfo=timezone.utc)


def snap(ts):
    return Snapshot("m", DeviceKind.METER, ts, {"power_w": 1.0})


def test_readings_from_the_future_are_not_usable():
    assert usable(snap(T0 + timedelta(seconds=0.5)), T0, 30.0)[0] is not None  # a moment younger: fine
    s, why = usable(snap(T0 + timedelta(hours=1)), T0, 30.0)
    assert s is None and "future" in why
    assert future_tolerance_s(30.0) == 3.0


def test_a_plan_from_the_future_is_stale():
    assert plan_fresh(T0, T0, 1800.0)[0]
    ok, why = plan_fresh(T0 + timedelta(hours=1), T0, 1800.0)
    assert not ok and "future" in why


def test_a_device_last_heard_in_the_future_is_lost():
    s = snap(T0 + timedelta(hours=1))
    is_lost, why = lost(s, s, T0, 25.0)
    assert is_lost and "future" in why
    assert not lost(snap(T0), snap(T0), T0, 25.0)[0]
