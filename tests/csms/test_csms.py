"""The central system against simulated stations over real WebSockets on loopback, both versions."""
from __future__ import annotations

import base64
import ssl

import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from simulators.ocpp_station import Car, SimStation, StationModel
from tests.csms.conftest import PASSWORDS
from tests.testkit.sites import make_site
from tests.testkit.wait import wait_until
from vpp.csms.server import CentralSystem

BOTH = ["cp16", "cp201"]


@pytest.mark.parametrize("sid", BOTH)
async def test_session_readings_and_tx_profile(park, sid):
    s = await park.station(sid, car=Car(soc=0.2))
    st = park.cs.stations[sid]
    assert st.booted and st.connected and st.vendor == "SimVendor"
    assert s.model.default_limit_a == 6.0  # the safe TxDefaultProfile at the minimum current
    await wait_until(lambda: park.cs.latest(sid).values["session_energy_wh"] > 0, 5)
    snap = park.cs.latest(sid)
    assert snap.values["plugged"] == 1.0 and snap.values["power_w"] == pytest.approx(6 * 200, rel=0.01)
    await park.cs.device(sid).set_current_limit(16.0)
    last = s.model.profiles[-1]
    assert last["purpose"] == "TxProfile" and last["tx"] == s.model.tx_id and last["unit"] == "A"
    assert s.model.limit_a() == 16.0
    await wait_until(lambda: park.cs.latest(sid).values["power_w"] == pytest.approx(16 * 200, rel=0.01), 5)
    assert park.cs.latest(sid).values["current_limit_a"] == 16.0
    await s.unplug()
    await wait_until(lambda: park.cs.latest(sid).values["plugged"] == 0.0, 5)
    assert st.transaction_id is None
    await wait_until(lambda: s.model.tx_limit is None and len(s.model.profiles) >= 2, 5)


async def test_power_units_three_phase(park):
    """A station whose profiles are in watts gets A × V × phases (200 V, three-phase)."""
    s = await park.station("w3", car=Car())
    await park.cs.device("w3").set_current_limit(10.0)
    last = s.model.profiles[-1]
    assert last["unit"] == "W" and last["limit"] == 10.0 * 200 * 3
    assert s.model.limit_a() == pytest.approx(10.0)


@pytest.mark.parametrize("sid", BOTH)
async def test_commands(park, sid):
    s = await park.station(sid, car=Car(), start_tx=False)
    dev = park.cs.device(sid)
    key = "ChargingScheduleAllowedChargingRateUnit" if sid == "cp16" else "SmartChargingCtrlr/RateUnit"
    assert await dev.get_configuration([key, "Nope/Nope"]) == {key: "Current", "Nope/Nope": None}
    assert await dev.remote_start("TAG-9") == "Accepted"
    await wait_until(lambda: s.model.tx_id is not None and park.cs.stations[sid].transaction_id == s.model.tx_id, 5)
    assert park.cs.stations[sid].id_tag == "TAG-9"
    assert await dev.remote_stop() == "Accepted"
    await wait_until(lambda: park.cs.stations[sid].transaction_id is None, 5)
    assert await dev.reset() == "Accepted"
    await wait_until(lambda: s.boots == 2 and park.cs.stations[sid].counters.get("boots") == 2, 5)


async def test_local_auth_list():
    cfg = make_site("ocpp-car-park", ocpp={"auth_list": ["TAG-OK"]})
    cs = CentralSystem(cfg)
    await cs.start()
    s = SimStation("cp16", "1.6", cs.url, password=PASSWORDS["cp16"], id_tag="TAG-BAD")
    try:
        await s.connect()
        await s.plug(Car())
        assert s.model.tx_id is None and cs.stations["cp16"].transaction_id is None
        await s.start_transaction("TAG-OK")
        assert s.model.tx_id is not None and cs.stations["cp16"].transaction_id == s.model.tx_id
        from ocpp.v16 import call as c16
        assert (await s.cp.call(c16.Authorize(id_tag="TAG-OK"))).id_tag_info["status"] == "Accepted"
        assert (await s.cp.call(c16.Authorize(id_tag="TAG-BAD"))).id_tag_info["status"] == "Invalid"
    finally:
        await s.close()
        await cs.stop()


def _auth(user: str, pw: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


async def test_unknown_id_bad_password_and_subprotocol_refused(park):
    url = park.cs.url
    with pytest.raises(InvalidStatus) as e:
        await connect(url + "nobody", subprotocols=["ocpp1.6"], additional_headers=_auth("nobody", "pw"))
    assert e.value.response.status_code == 404
    for headers in ({}, _auth("cp16", "wrong"), _auth("cp201", PASSWORDS["cp201"])):
        with pytest.raises(InvalidStatus) as e:
            await connect(url + "cp16", subprotocols=["ocpp1.6"], additional_headers=headers)
        assert e.value.response.status_code == 401
    ws = await connect(url + "cp16", subprotocols=["ocpp2.0.1"], additional_headers=_auth("cp16", PASSWORDS["cp16"]))
    with pytest.raises(ConnectionClosed) as e:
        await ws.recv()
    assert e.value.rcvd.code == 1002
    assert park.cs.refused == {"unknown charge point id": 1, "bad credentials": 3, "subprotocol": 1}
    assert not park.cs.stations["cp16"].connected


async def test_security_profile_2_tls(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    cfg = make_site("ocpp-car-park", ocpp={"security_profile": 2, "certfile": str(certfile), "keyfile": str(keyfile)})
    cs = CentralSystem(cfg)
    await cs.start()
    assert cs.url.startswith("wss://")
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    s = SimStation("cp201", "2.0.1", cs.url, password=PASSWORDS["cp201"], ssl_context=client_ctx,
                   model=StationModel(voltage_v=200))
    try:
        await s.connect()
        await wait_until(lambda: s.model.default_limit_a == 6.0, 5)
        assert cs.stations["cp201"].booted
        with pytest.raises(Exception):  # plain ws to a TLS port fails
            await connect(cs.url.replace("wss://", "ws://") + "cp16", subprotocols=["ocpp1.6"],
                          additional_headers=_auth("cp16", PASSWORDS["cp16"]), open_timeout=3)
        untrusted = ssl.create_default_context()  # a station that does not trust our CA
        with pytest.raises(ssl.SSLError):
            await connect(cs.url + "cp16", subprotocols=["ocpp1.6"], ssl=untrusted,
                          additional_headers=_auth("cp16", PASSWORDS["cp16"]), open_timeout=3)
    finally:
        await s.close()
        await cs.stop()


async def test_disconnected_station_unavailable_with_alarm(park):
    s = await park.station("cp16", car=Car())
    await s.close()
    await wait_until(lambda: not park.cs.stations["cp16"].connected, 5)
    assert park.cs.latest("cp16").quality.value == "unavailable"
    assert "ocpp:cp16" in park.alarms.active
    with pytest.raises(ConnectionError):
        await park.cs.device("cp16").set_current_limit(10)
    # what it keeps meanwhile is the safe default it got at boot
    assert s.model.default_limit_a == 6.0


async def test_notify_ev_charging_needs_reaches_the_needs_sink(park):
    from datetime import datetime, timedelta, timezone

    got = []
    park.cs.needs_sink = lambda sid, needs: got.append((sid, needs))
    s = await park.station("cp201", car=Car())
    dep = (datetime.now(timezone.utc) + timedelta(hours=9)).replace(microsecond=0)
    assert await s.notify_needs(30_000, dep) == "Accepted"
    assert got == [("cp201", {"energy_wh": 30_000.0, "departure": dep})]
    assert park.cs.stations["cp201"].needs["energy_wh"] == 30_000.0


def test_town_generator_gives_the_car_park_ocpp_stations():
    from simulators.town import generate_town, town_config

    plain = town_config(5, seed=3)
    cfg = town_config(5, seed=3, ocpp_stations=4)
    cps = [d for d in cfg.devices if d.protocol == "ocpp"]
    assert [d.id for d in cps] == ["centre-cp01", "centre-cp02", "centre-cp03", "centre-cp04"]
    assert [d.version for d in cps] == ["1.6", "2.0.1", "1.6", "2.0.1"]
    assert all(d.home == "centre" and d.ocpp.password and d.ratings.voltage_v == 200 for d in cps)
    assert len(cfg.devices) == len(plain.devices) + 4  # the homes are unchanged
    assert generate_town(5, seed=3, ocpp_stations=4) == generate_town(5, seed=3, ocpp_stations=4)


def test_ocpp_device_config_errors_name_the_field():
    from vpp.config import ConfigError, parse_config
    from tests.testkit.sites import site_data

    data = site_data("ocpp-car-park")
    data["devices"] = [{"id": "x", "kind": "ev_charger", "protocol": "ocpp", "ratings": {"max_current_a": 16}}]
    with pytest.raises((ConfigError, ValueError), match="version"):
        parse_config(data)
    data["devices"] = [{"id": "x", "kind": "battery", "protocol": "ocpp", "version": "1.6",
                        "ratings": {"capacity_wh": 1, "max_charge_w": 1, "max_discharge_w": 1}}]
    with pytest.raises((ConfigError, ValueError), match="ev_charger only"):
        parse_config(data)
    data["devices"] = [{"id": "x", "kind": "ev_charger", "ratings": {"max_current_a": 16}}]
    with pytest.raises((ConfigError, ValueError), match="register_map"):
        parse_config(data)
    data["ocpp"] = {"security_profile": 2}
    data["devices"] = []
    with pytest.raises((ConfigError, ValueError), match="certfile"):
        parse_config(data)
