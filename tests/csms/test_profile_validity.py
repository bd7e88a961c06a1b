"""Charging profiles end: the simulated station falls back, the central system renews in time.

Real stations over WebSockets on loopback, both versions, on a simulated clock running 60×
so a 60 s profile (the shortest the config allows) lasts 1 s of wall time.
"""
from __future__ import annotations

import pytest

from simulators.clock import SimClock
from simulators.ocpp_station import Car
from simulators.ocpp_validity import profile_end
from tests.csms.conftest import Park, RecordingAlarms
from tests.testkit.sites import make_site, overridden
from tests.testkit.wait import wait_until
from vpp.csms.server import CentralSystem

BOTH = ["cp16", "cp201"]
SPEED = 60.0


async def _park(renew: bool) -> tuple[Park, SimClock]:
    clock = SimClock(speed=SPEED)
    alarms = RecordingAlarms()
    site = overridden(make_site("ocpp-car-park"), ocpp={"profile_duration_s": 60})
    cs = CentralSystem(site, now=clock.now, alarm_sink=alarms)
    cs.renew_every_s = 0.1 if renew else None
    await cs.start()
    return Park(cs, alarms), clock


async def _close(p: Park) -> None:
    for s in p.sims:
        await s.close()
    await p.cs.stop()


def test_profile_end_is_the_earlier_of_duration_and_valid_to():
    from datetime import datetime, timezone
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    sch = {"start_schedule": "2026-01-01T00:00:00Z", "duration": 60}
    assert profile_end({}, sch, t0).isoformat() == "2026-01-01T00:01:00+00:00"
    assert profile_end({"valid_to": "2026-01-01T00:00:30Z"}, sch, t0).isoformat() == "2026-01-01T00:00:30+00:00"
    assert profile_end({}, {"duration": 10}, t0).isoformat() == "2026-01-01T00:00:10+00:00"  # from receipt
    assert profile_end({}, {}, t0) is None


@pytest.mark.parametrize("sid", BOTH)
async def test_station_falls_back_when_profiles_end(sid):
    p, clock = await _park(renew=False)
    try:
        s = await p.station(sid, car=Car(soc=0.2), clock=clock, meter_interval_s=0.05)
        ch = p.cs.device(sid)
        await ch.set_current_limit(16.0)
        assert s.model.limit_a() == 16.0 and s.model.tx_until is not None
        # nobody renews it: at its end the station goes back to its default profile (6 A)
        await wait_until(lambda: "TxProfile" in s.model.expired, 10)
        assert s.model.limit_a() == 6.0
        await wait_until(lambda: p.cs.latest(sid).values.get("current_limit_a") == 6.0, 5)
        # a default profile with a duration: after it, the station's own maximum
        assert await ch.set_profile(10.0, "TxDefaultProfile", 60)
        assert s.model.limit_a() == 10.0
        await wait_until(lambda: "TxDefaultProfile" in s.model.expired, 10)
        assert s.model.limit_a() == s.model.max_current_a == 32.0
    finally:
        await _close(p)


@pytest.mark.parametrize("sid", BOTH)
async def test_csms_renews_tx_profile_before_it_ends(sid):
    p, clock = await _park(renew=True)
    try:
        s = await p.station(sid, car=Car(soc=0.2), clock=clock, meter_interval_s=0.05)
        await p.cs.device(sid).set_current_limit(16.0)
        first_end = s.model.tx_until
        st = p.cs.stations[sid]
        # three renewals span more than two profile lengths: without them it would have ended twice
        await wait_until(lambda: st.counters.get("profiles_renewed", 0) >= 3, 30)
        assert s.model.expired == []  # the station never ran out of its TxProfile
        assert s.model.limit_a() == 16.0 and s.model.tx_until > first_end
        assert clock.now() > first_end
        assert p.cs.latest(sid).values["current_limit_a"] == 16.0
        assert f"ocpp:{sid}" not in p.alarms.active
    finally:
        await _close(p)


async def test_no_renewal_without_a_transaction_or_once_paused():
    """Renewal is only for a running transaction's accepted profile (pure rule)."""
    from datetime import timedelta

    from vpp.csms.renewal import renewal_due
    from vpp.csms.station import StationState
    clock = SimClock(speed=0)
    now = clock.now()
    st = StationState("x", "1.6")
    st.connected, st.limit_a, st.limit_until = True, 10.0, now + timedelta(seconds=10)
    assert not renewal_due(st, now, 60)  # no transaction
    st.transaction_id = "1"
    assert renewal_due(st, now, 60)
    assert not renewal_due(st, now - timedelta(seconds=60), 60)  # plenty of time left
    st.paused_by_stop = True
    assert not renewal_due(st, now, 60)
