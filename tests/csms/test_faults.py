"""Bad frames and misbehaving stations: answered or counted, never fatal, others unaffected."""
from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from simulators.ocpp_station import Car, Quirks, SimStation, StationModel
from tests.testkit.sites import make_site
from tests.testkit.wait import wait_until
from vpp.csms.server import CentralSystem


def _auth(user: str, pw: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


async def _raw(park, sid="cp16", pw="pw-cp16", sub="ocpp1.6"):
    return await connect(park.cs.url + sid, subprotocols=[sub], additional_headers=_auth(sid, pw), max_size=None)


async def _heartbeat(ws, uid="hb") -> list:
    await ws.send(json.dumps([2, uid, "Heartbeat", {}]))
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def test_malformed_frames_unknown_actions_and_wrong_types(park):
    ws = await _raw(park)
    try:
        await ws.send("this is not json")
        await ws.send(json.dumps({"not": "a list"}))
        await ws.send(json.dumps([7, "x1", "Heartbeat", {}]))  # no such message type
        for frame in ([2, "e1", "FlyToTheMoon", {}], [2, "e2", "StartTransaction", {"connectorId": "one"}],
                      [2, "e3", "Heartbeat"]):
            await ws.send(json.dumps(frame))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply[0] == 4 and reply[1] == frame[1], reply  # a CallError naming the frame
        codes = dict(park.cs.stations["cp16"].counters)
        assert codes["malformed"] == 4 and codes["rejected_calls"] == 2  # the last frame lacks its payload
        assert codes["error:NotSupported"] == 1
        assert (await _heartbeat(ws))[0] == 3  # the connection is still served
        assert park.cs.stations["cp16"].connected and park.cs.stations["cp16"].transaction_id is None
    finally:
        await ws.close()


async def test_oversized_frame_closes_only_that_connection(park):
    other = await park.station("cp201", car=Car())
    ws = await _raw(park)
    await ws.send(json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "x" * (200 * 1024)}]))
    with pytest.raises(ConnectionClosed) as e:
        await asyncio.wait_for(ws.recv(), 5)
    assert e.value.rcvd.code == 1009
    await wait_until(lambda: park.cs.stations["cp16"].counters.get("oversized") == 1, 5)
    await park.cs.device("cp201").set_current_limit(11.0)  # another station is unaffected
    assert other.model.limit_a() == 11.0


async def test_meter_values_flood_is_throttled_and_others_served(park):
    other = await park.station("cp201", car=Car())
    ws = await _raw(park)
    frame = [2, "", "MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": "2026-12-05T00:00:00Z",
                                                                       "sampledValue": [{"value": "1"}]}]}]
    n = 300
    for i in range(n):
        frame[1] = f"m{i}"
        await ws.send(json.dumps(frame))
    replies = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(n)]
    busy = [r for r in replies if r[0] == 4]
    assert busy and all(r[2] == "GenericError" for r in busy)
    assert park.cs.stations["cp16"].counters["throttled"] == len(busy)
    await park.cs.device("cp201").set_current_limit(13.0)
    assert other.model.limit_a() == 13.0
    await ws.close()


async def test_clock_skewed_timestamps_counted_not_trusted(park):
    s = await park.station("cp201", car=Car(), quirks=Quirks(clock_skew_s=-7200))
    st = park.cs.stations["cp201"]
    await wait_until(lambda: st.counters.get("clock_skew", 0) >= 2 and st.readings.get("power_w", 0) > 0, 5)
    snap = park.cs.latest("cp201")
    assert abs((snap.ts - datetime.now(timezone.utc)).total_seconds()) < 60  # our time, not theirs
    assert snap.values["power_w"] > 0 and s.model.tx_id == st.transaction_id


async def test_reconnect_storm_of_50_stations():
    devices = [{"id": f"s{i:02d}", "kind": "ev_charger", "protocol": "ocpp", "version": "1.6" if i % 2 else "2.0.1",
                "ocpp": {"password": f"pw{i}"}, "ratings": {"voltage_v": 200, "min_current_a": 6, "max_current_a": 32}}
               for i in range(50)]
    cs = CentralSystem(make_site("ocpp-car-park", devices=devices))
    await cs.start()
    sims = [SimStation(d["id"], d["version"], cs.url, password=d["ocpp"]["password"], model=StationModel(),
                       meter_interval_s=0.5) for d in devices]
    try:
        for round_ in range(2):  # everyone connects at once, drops, and comes back at once
            await asyncio.gather(*(s.connect() for s in sims))
            await wait_until(lambda: all(st.connected and st.safe_limit_a == 6.0 for st in cs.stations.values()), 20)
            if round_ == 0:
                await asyncio.gather(*(s.close() for s in sims))
                for s in sims:
                    s._stopping = False
                await wait_until(lambda: not any(st.connected for st in cs.stations.values()), 10)
        assert all(st.counters["boots"] == 2 and st.counters["connects"] == 2 for st in cs.stations.values())
        await cs.device("s07").set_current_limit(16.0)  # the central system still commands normally
        assert sims[7].model.default_limit_a == 6.0
    finally:
        await asyncio.gather(*(s.close() for s in sims))
        await cs.stop()
