"""A station that reports itself Faulted / Unavailable mid-session: alarm, no session planned
on it until it recovers (its car's plug-in is remembered), both versions over real WebSockets."""
from __future__ import annotations

import pytest

import optimizer
from simulators.ocpp_station import Car
from tests.testkit.wait import wait_until
from vpp.control.ev import ev_sessions
from vpp.control.image import read_image
from vpp.slots import SLOT_S, floor_time


def _sessions(park, sid: str, plugs: dict) -> tuple[set[str], dict]:
    cfg = park.cs.config
    now = park.cs.now()
    image = read_image(cfg, now, fleet=park.cs, max_age_s=60, kinds=("ev_charger",))
    horizon = optimizer.Horizon(floor_time(now), SLOT_S, 8)
    sessions, plugs = ev_sessions(image, [cfg.device(sid)], horizon, plugs, cfg.site.timezone)
    return {s.charger_id for s in sessions}, plugs


@pytest.mark.parametrize("sid,fault,code", [("cp16", "Faulted", "GroundFailure"), ("cp201", "Faulted", None),
                                            ("cp16", "Unavailable", "NoError"), ("cp201", "Unavailable", None)])
async def test_fault_mid_session_alarms_and_leaves_the_plan_until_recovered(park, sid, fault, code):
    s = await park.station(sid, car=Car(soc=0.2))
    await wait_until(lambda: park.cs.latest(sid).values.get("power_w", 0) > 0, 5)
    planned, plugs = _sessions(park, sid, {})
    assert planned == {sid}
    plugged_at = plugs[sid].plugged_at

    await s.status(fault, code or "NoError")
    key = f"ocpp-fault:{sid}"
    await wait_until(lambda: key in park.alarms.active, 5)
    assert fault in park.alarms.active[key]
    if code not in (None, "NoError"):
        assert code in park.alarms.active[key]
    snap = park.cs.latest(sid)
    assert snap.quality.value == "unavailable" and fault in snap.reason
    planned, plugs = _sessions(park, sid, plugs)
    assert planned == set()  # no session on a station out of service...
    assert plugs[sid].plugged_at == plugged_at  # ...but its car is not forgotten

    await s.status()  # back in service (Charging / Occupied)
    await wait_until(lambda: key not in park.alarms.active, 5)
    assert park.cs.latest(sid).quality.value == "good"
    planned, plugs = _sessions(park, sid, plugs)
    assert planned == {sid} and plugs[sid].plugged_at == plugged_at
