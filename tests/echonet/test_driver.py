"""The ECHONET driver against emulated homes on loopback UDP: values equal the physics,
validated and read-back writes, SNA per property, faults, alarms, malformed traffic."""
from __future__ import annotations

import asyncio
import socket

import pytest

from drivers.device import SetpointError, VerifyError
from drivers.echonet.frame import Esv, Frame, Property, encode
from drivers.echonet.transport import EchonetError, EchonetSocket, EchonetTimeout
from drivers.fleet import DriverFleet
from drivers.poller import PollPolicy
from drivers.protocols import Battery, EvCharger, Meter, PvInverter, Quality, V2hCharger
from tests.echonet.conftest import echonet_site


def echonet_only(cfg):
    return cfg.model_copy(update={"devices": [d for d in cfg.devices if d.protocol == "echonet_lite"]})


@pytest.fixture
async def fleet(town):
    f = DriverFleet(echonet_only(town.config), policy=PollPolicy(fail_threshold=2))
    yield f
    await f.stop()


async def test_readings_equal_the_physics_in_canonical_signs(town, fleet):
    town.model("h001-bat").apply_write({"setpoint_w": -2500.0, "setpoint_enabled": 1.0})
    town.step(30)
    snaps = await fleet.poll_once()
    bat, meter, pv = (town.model(f"h001-{k}") for k in ("bat", "meter", "pv"))
    s = snaps["h001-bat"]
    assert s.quality is Quality.GOOD
    assert bat.power_w == pytest.approx(-2500.0)
    assert s.values["power_w"] == pytest.approx(bat.power_w, abs=1)   # D3 + charging -> − here
    assert s.values["soc"] == pytest.approx(bat.soc, abs=1 / bat.capacity_wh)
    assert snaps["h001-meter"].values["power_w"] == pytest.approx(meter.power_w, abs=1)  # + import
    assert snaps["h001-pv"].values["power_w"] == pytest.approx(pv.power_w, abs=1)
    assert isinstance(fleet.device("h001-bat"), Battery) and isinstance(fleet.device("h001-pv"), PvInverter)
    assert isinstance(fleet.device("h001-meter"), Meter)
    assert isinstance(fleet.device("h001-ev"), EvCharger) and isinstance(fleet.device("h001-ev"), V2hCharger)


async def test_set_power_is_verified_and_followed_by_the_physics(town, fleet):
    await fleet.poll_once()
    bat = fleet.device("h002-bat")
    await bat.set_power(1500.0)
    town.step(10)
    assert town.model("h002-bat").power_w == pytest.approx(1500.0)
    s = await bat.read()
    assert s.values["setpoint_w"] == 1500.0 and s.values["power_w"] == pytest.approx(1500.0, abs=1)
    await bat.set_power(0.0)
    town.step(10)
    assert town.model("h002-bat").power_w == 0.0


async def test_out_of_range_setpoints_refused_before_any_frame(town, fleet):
    await fleet.poll_once()
    node = town.echonet.node_of("h001-bat")
    sets = node.stats["sets"]
    bat, pv = fleet.device("h001-bat"), fleet.device("h001-pv")
    for bad in (1e6, -1e6, float("nan")):
        with pytest.raises(SetpointError):
            await bat.set_power(bad)
    with pytest.raises(SetpointError):
        await pv.set_power_limit(-1.0)
    with pytest.raises(SetpointError):
        await fleet.device("h001-ev").set_current_limit(99.0)
    assert node.stats["sets"] == sets


async def test_pv_limit_and_v2h_commands_read_back(town, fleet):
    await fleet.poll_once()
    await fleet.device("h001-pv").set_power_limit(1000.0)
    town.step(5)
    assert town.model("h001-pv").limit_in_force_w() == 1000.0
    assert (await fleet.device("h001-pv").read()).values["power_limit_w"] == 1000.0
    ev = fleet.device("h001-ev")
    await ev.set_current_limit(10.0)
    assert town.model("h001-ev").current_limit_a == pytest.approx(10.0)
    assert (await ev.read()).values["current_limit_a"] == pytest.approx(10.0)
    await ev.set_discharge_power(3000.0)
    assert ev.decoded["operation_mode"] == "discharge" and ev.decoded["discharge_power_w"] == 3000


async def test_silently_reverted_mode_alarms_within_two_polls(town, fleet):
    await fleet.poll_once()
    bat = fleet.device("h001-bat")
    await bat.set_power(-1000.0)
    await bat.read()
    assert "mode_reverted" not in bat.alarms
    town.echonet.objects["h001-bat"].revert_mode("auto")   # no INF: silent
    for _ in range(2):
        await bat.read()
        if "mode_reverted" in bat.alarms:
            break
    assert "auto" in bat.alarms["mode_reverted"]
    await bat.set_power(-1000.0)    # a new, verified command clears it
    assert "mode_reverted" not in bat.alarms


async def test_maker_quirks_external_control_sna_and_timed_revert():
    site = echonet_site(1, maps={"h001-bat": "kaisei_battery"})
    async with site:
        site.step(60)
        fleet = DriverFleet(echonet_only(site.config))
        try:
            await fleet.poll_once()
            bat = fleet.device("h001-bat")
            assert bat.sna[0xE2] >= 1 and "soc" in bat.latest.values  # E2 Get_SNA: soc from E4
            await bat.set_power(-2000.0)   # external control (F0) goes first, else DA is refused
            obj = site.echonet.objects["h001-bat"]
            assert obj.values["external_control"] == "external" and obj.values["operation_mode"] == "charge"
            site.step(650)                 # the maker falls back to auto after 600 s
            await bat.read()
            assert "mode_reverted" in bat.alarms
            assert site.model("h001-bat").setpoint_in_force_w() == 0.0
        finally:
            await fleet.stop()


async def test_sna_for_chosen_epcs_leaves_the_rest(town, fleet):
    await fleet.poll_once()
    town.echonet.objects["h002-meter"].sna.add(0xE7)
    s = await fleet.device("h002-meter").read()
    assert "power_w" not in s.values and "import_energy_wh" in s.values


async def test_get_sna_to_everything_makes_the_device_unavailable(town, fleet):
    await fleet.poll_once()
    obj = town.echonet.objects["h001-pv"]
    obj.sna.update(obj.obj.properties)
    for _ in range(3):
        await fleet.poll_once()
    d = fleet.device("h001-pv")
    assert not d.available and "Get_SNA" in d.last_error
    assert fleet.latest("h001-pv").quality is Quality.UNAVAILABLE
    assert fleet.available("h001-bat")


async def test_offline_and_slow_nodes_time_out_and_recover(town, fleet):
    await fleet.poll_once()
    node = town.echonet.node_of("h002-bat")
    bat = fleet.device("h002-bat")
    bat.node.timeout_s, bat.node.retries = 0.2, 1
    node.set_fault("offline")
    with pytest.raises(EchonetTimeout):
        await bat.read()
    assert bat.node.stats["retries"] >= 1
    node.slow_delay_s = 0.3
    node.set_fault("slow")
    with pytest.raises(EchonetTimeout):
        await bat.read()
    node.set_fault(None)
    bat.node.timeout_s = 1.0
    assert (await bat.read()).quality is Quality.GOOD
    assert bat.node.stats["wrong_tid"] >= 1   # the late replies of the slow node were not taken


async def test_frozen_values_turn_stale(town, fleet):
    from drivers.device import StalePolicy
    f = DriverFleet(echonet_only(town.config), stale=StalePolicy(stale_after_s=0.0, stale_min_wh=0.0))
    try:
        town.model("h001-bat").apply_write({"setpoint_w": 2000.0, "setpoint_enabled": 1.0})
        town.step(5)
        await f.poll_once()
        town.echonet.objects["h001-bat"].frozen = True
        town.step(5)
        s = await f.device("h001-bat").read()
        assert s.quality is Quality.STALE
    finally:
        await f.stop()


async def test_inf_bursts_are_accepted_and_update_values(town, fleet):
    await fleet.poll_once()
    bat = fleet.device("h001-bat")
    node = town.echonet.node_of("h001-bat")
    town.model("h001-bat").apply_write({"setpoint_w": 1200.0, "setpoint_enabled": 1.0})
    town.step(5)
    before = bat.node.stats["inf"]
    sent = node.inf_burst(bat.eoj, 50)
    from tests.testkit.wait import wait_until
    await wait_until(lambda: bat.node.stats["inf"] >= before + sent, timeout_s=5)
    assert bat.values()["power_w"] == pytest.approx(1200.0, abs=1)
    assert (await bat.read()).quality is Quality.GOOD


async def test_property_map_change_at_run_time_alarms(town, fleet):
    await fleet.poll_once()
    town.echonet.objects["h002-pv"].extra_get.add(0xE8 - 0x10)  # a new EPC appears in the Get map
    d = fleet.device("h002-pv")
    for _ in range(d.obj.slow_every):
        await d.read()
    assert "property_map_changed" in d.alarms


async def test_hostile_traffic_is_counted_never_crashes(town, fleet):
    await fleet.poll_once()
    sock = fleet.echonet
    bat = fleet.device("h001-bat")
    host, port = sock.transport.get_extra_info("sockname")[:2]
    node_host = bat.node.host
    # from the node's own address: malformed frames and a reply with a TID nobody waits for
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((node_host, 0))  # other port of the same address: an unexpected source
        for raw in (b"\x10\x81\x00", b"\x10\x82" + b"\x00" * 12,
                    encode(Frame(999, bat.eoj, 0x05FF01, Esv.GET_RES, (Property(0xE4, b"\x10"),)))):
            s.sendto(raw, (host, port))
    from tests.testkit.wait import wait_until
    await wait_until(lambda: sock.stats["unexpected_source"] >= 3, timeout_s=5)
    # the node's real endpoint sends garbage and a stray reply: counted per reason
    node = town.echonet.node_of("h001-bat")
    node.transport.sendto(b"\x10\x81\x00\x01", (host, port))
    node.transport.sendto(encode(Frame(4242, bat.eoj, 0x05FF01, Esv.GET_RES, ())), (host, port))
    await wait_until(lambda: sock.stats["malformed:truncated"] >= 1 and bat.node.stats["wrong_tid"] >= 1, timeout_s=5)
    assert (await bat.read()).quality is Quality.GOOD


async def test_requests_on_a_closed_socket_fail_cleanly():
    s = EchonetSocket()
    node = s.requester("127.0.0.1")
    with pytest.raises(EchonetError):
        await node.get(0x027D01, [0xE4])


async def test_reverted_mode_becomes_a_site_alarm_and_clears(town, fleet):
    from datetime import datetime, timezone

    from vpp.control.alarms import Alarms
    from vpp.control.liveness import Liveness

    alarms = Alarms()
    live = Liveness(echonet_only(town.config), fleet.latest, driver_alarms=fleet.device_alarms)
    await fleet.poll_once()
    bat = fleet.device("h002-bat")
    await bat.set_power(-800.0)
    town.echonet.objects["h002-bat"].revert_mode("auto")
    await fleet.poll_once()
    await fleet.poll_once()
    now = datetime.now(timezone.utc)
    live.check(alarms, now)
    active = {a.key: a for a in alarms.active()}
    assert "device:h002-bat:mode_reverted" in active and "auto" in active["device:h002-bat:mode_reverted"].reason
    await bat.set_power(-800.0)
    live.check(alarms, now)
    assert "device:h002-bat:mode_reverted" not in {a.key for a in alarms.active()}


async def test_revert_s_puts_the_battery_back_to_standby(town, fleet):
    await fleet.poll_once()
    bat = fleet.device("h001-bat")
    await bat.set_power(1000.0, revert_s=0.0)   # 0: no revert
    assert bat._revert_at is None
    await bat.set_power(1000.0, revert_s=0.05)
    await asyncio.sleep(0.1)
    await bat.read()                               # the first poll after it lapsed idles it
    assert town.echonet.objects["h001-bat"].values["operation_mode"] == "standby"
    assert bat.commanded_mode == "standby" and "mode_reverted" not in bat.alarms
