"""Drivers against the simulated site over real Modbus TCP loopback."""
from __future__ import annotations

import logging

import pytest

from drivers.device import SetpointError, StalePolicy
from drivers.protocols import Battery, EvCharger, Meter, PvInverter, Quality
from tests.testkit.wait import wait_until


def close(a, b, tol):
    return abs(a - b) <= tol


async def polled_good(fleet):
    """Poll until one round gives every device a good snapshot; returns that round.

    The first contact with a device (TCP connect, SunSpec discovery) must fit the fixture's
    0.3 s timeout per request: on a busy machine it can miss it and the poll returns nothing
    for that device, so tests start from the first complete round instead of the first poll.
    """
    async def all_good():
        snaps = await fleet.poll_once()
        return snaps if all(s is not None and s.quality is Quality.GOOD for s in snaps.values()) else None
    return await wait_until(all_good, 15.0, what="a good snapshot of every device")


async def test_decoded_values_equal_physical_state(centre):
    site, fleet = centre
    site.step(1)
    snaps = await polled_good(fleet)
    assert all(s is not None and s.quality is Quality.GOOD for s in snaps.values()), snaps
    pv, bat, meter = site.model("pv1"), site.model("bat1"), site.model("meter1")
    assert pv.power_w > 1000  # noon in June
    assert close(snaps["pv1"].values["power_w"], pv.power_w, 5.0)  # int16 W with W_SF 1
    assert close(snaps["bat1"].values["soc"], bat.soc, 0.001)
    assert snaps["bat1"].values["capacity_wh"] == bat.capacity_wh
    assert close(snaps["meter1"].values["power_w"], meter.power_w, 0.01)
    assert close(snaps["meter1"].values["power_w"], site.grid_power_w(), 0.01)
    assert snaps["ev1"].values["plugged"] == 0


async def test_devices_implement_capability_protocols(centre):
    _, fleet = centre
    assert isinstance(fleet.device("bat1"), Battery)
    assert isinstance(fleet.device("pv1"), PvInverter)
    assert isinstance(fleet.device("ev1"), EvCharger)
    assert isinstance(fleet.device("meter1"), Meter)


async def test_setpoints_change_the_simulated_devices(centre):
    site, fleet = centre
    site.step(1)
    await polled_good(fleet)
    await fleet.device("bat1").set_power(-20000, revert_s=600)
    await fleet.device("pv1").set_power_limit(10000, revert_s=600)
    site.model("ev1").plug(need_wh=20000)
    await fleet.device("ev1").set_current_limit(10)
    soc0 = site.model("bat1").soc
    site.step(60)
    snaps = await fleet.poll_once()
    assert site.model("bat1").power_w == pytest.approx(-20000)
    assert site.model("bat1").soc > soc0                       # charging
    assert snaps["bat1"].values["power_w"] == pytest.approx(-20000)
    assert snaps["bat1"].values["setpoint_w"] == pytest.approx(-20000)
    assert site.model("pv1").power_w <= 10000 + 1
    assert snaps["pv1"].values["power_limit_w"] == pytest.approx(10000)
    assert snaps["ev1"].values["current_limit_a"] == 10
    assert 0 < site.model("ev1").power_w <= 10 * 230 * 1 + 1
    assert snaps["ev1"].values["plugged"] == 1


async def test_revert_timeout_is_written_and_honoured(centre):
    site, fleet = centre
    site.step(1)
    await polled_good(fleet)
    await fleet.device("bat1").set_power(15000, revert_s=30)
    site.step(10)
    assert site.model("bat1").power_w == pytest.approx(15000)
    site.step(60)  # past the revert timeout: the battery falls back to idle …
    site.step(1)   # … from the next physics step on
    snaps = await fleet.poll_once()
    assert site.model("bat1").power_w == 0
    assert snaps["bat1"].values["setpoint_revert_s"] == 30
    assert snaps["bat1"].values["power_w"] == 0


@pytest.mark.parametrize("device,call", [
    ("bat1", lambda d: d.set_power(60000)),            # above max_discharge_w 50 kW
    ("bat1", lambda d: d.set_power(-50001)),           # above max_charge_w
    ("bat1", lambda d: d.set_power(float("nan"))),
    ("bat1", lambda d: d.set_power(1000, revert_s=-1)),
    ("pv1", lambda d: d.set_power_limit(50001)),       # above the 50 kW rating
    ("pv1", lambda d: d.set_power_limit(-1)),
    ("ev1", lambda d: d.set_current_limit(3)),         # below min 6 A (0 would pause)
    ("ev1", lambda d: d.set_current_limit(40)),        # above max 32 A
])
async def test_out_of_range_setpoints_are_refused_without_writing(centre, device, call):
    site, fleet = centre
    await polled_good(fleet)
    with pytest.raises(SetpointError):
        await call(fleet.device(device))
    assert site.server_stats(device)["writes"] == 0
    assert site.model(device).writes == 0


async def test_soc_limits_refuse_discharge_when_empty(centre):
    site, fleet = centre
    bat = site.model("bat1")
    bat.soc = 0.05  # at soc_min
    site.step(1)
    await polled_good(fleet)
    with pytest.raises(SetpointError, match="soc_min"):
        await fleet.device("bat1").set_power(1000)
    await fleet.device("bat1").set_power(-1000)  # charging is allowed
    assert site.server_stats("bat1")["writes"] > 0


async def poll_until(fleet, device, predicate, timeout_s=10.0):
    async def reached():
        await fleet.poll_once()
        s = fleet.latest(device)
        return s if s is not None and predicate(s) else None
    return await wait_until(reached, timeout_s, what=f"{device} condition; latest {fleet.latest(device)}")


@pytest.mark.parametrize("fault", ["offline", "exception", "slow"])
async def test_faults_make_device_unavailable_then_recover(centre, fault, caplog):
    site, fleet = centre
    caplog.set_level(logging.INFO, logger="drivers.poller")
    await polled_good(fleet)
    assert fleet.available("bat1")
    await site.inject("bat1", fault)
    for _ in range(2):
        await fleet.poll_once()
        assert fleet.available("bat1")  # not yet: three failed polls are needed
    snaps = await fleet.poll_once()
    assert not fleet.available("bat1")
    assert snaps["bat1"].quality is Quality.UNAVAILABLE
    if fault == "exception":
        assert "0x04" in snaps["bat1"].reason
    assert fleet.available("pv1") and snaps["pv1"].quality is Quality.GOOD  # others unaffected
    with pytest.raises(SetpointError, match="unavailable"):
        await fleet.device("bat1").set_power(1000)
    await site.inject("bat1", None)
    s = await poll_until(fleet, "bat1", lambda s: s.quality is Quality.GOOD, timeout_s=60.0)
    assert fleet.available("bat1") and s.values["soc"] == pytest.approx(0.5, abs=0.01)
    lines = [r.getMessage() for r in caplog.records if r.name == "drivers.poller"]
    assert len(lines) == 2, lines  # one line when it went away, one when it came back
    assert "unavailable" in lines[0] and "recovered" in lines[1]


async def test_frozen_values_are_flagged_stale_and_recover(centre):
    site, fleet = centre
    fleet.device("bat1").stale = StalePolicy(stale_after_s=0.3, stale_min_wh=0.0)
    await polled_good(fleet)
    await fleet.device("bat1").set_power(20000)
    for _ in range(3):
        site.step(1)
        snaps = await fleet.poll_once()
        assert snaps["bat1"].quality is Quality.GOOD
    await site.inject("bat1", "frozen")

    async def stale():
        site.step(1)
        await fleet.poll_once()
        s = fleet.latest("bat1")
        return s if s.quality is Quality.STALE else None
    s = await wait_until(stale, 10.0, what="bat1 flagged stale")
    assert "unchanged" in s.reason
    with pytest.raises(SetpointError, match="stale"):
        await fleet.device("bat1").set_power(5000)
    await site.inject("bat1", None)
    site.step(1)
    snaps = await fleet.poll_once()
    assert snaps["bat1"].quality is Quality.GOOD


async def test_shared_connection_isolates_a_silent_device_id(homes):
    site, fleet = homes
    await polled_good(fleet)
    assert len(fleet.pollers) == 4  # three home ports + the feeder meter
    await site.inject("h001-bat", "offline")  # h001-pv on the same port keeps answering
    for _ in range(3):
        snaps = await fleet.poll_once()
    assert snaps["h001-bat"].quality is Quality.UNAVAILABLE
    assert snaps["h001-pv"].quality is Quality.GOOD and fleet.available("h001-pv")
    await site.inject("h001-bat", None)
    await poll_until(fleet, "h001-bat", lambda s: s.quality is Quality.GOOD)


async def test_background_polling_delivers_snapshots(centre):
    site, fleet = centre
    got = []
    await fleet.start(on_snapshot=got.append)
    await wait_until(lambda: {s.device for s in got} >= {"pv1", "bat1", "meter1", "ev1"}, 10.0,
                     what="a snapshot of every device")
    await fleet.stop()
    assert {s.device for s in got} >= {"pv1", "bat1", "meter1", "ev1"}
    assert all(s.quality is Quality.GOOD for s in got)
