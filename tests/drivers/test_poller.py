"""Poller details against a bare image server: decode cache, full polls, back-off."""
from __future__ import annotations

import time

import pytest

from drivers.device import make_device
from drivers.modbus import ModbusLink
from drivers.poller import ConnectionPoller, PollPolicy
from drivers.protocols import Quality
from drivers.registermap import load_map
from drivers.server import ModbusImageServer
from vpp.config import Device

from driver_helpers import free_ports


def battery_cfg(port: int, **kw) -> Device:
    return Device(id="b", kind="battery", register_map="sunspec_storage",
                  connection={"host": "127.0.0.1", "port": port, "device_id": 1},
                  ratings={"capacity_wh": 10000, "max_charge_w": 5000, "max_discharge_w": 5000},
                  timeout_s=0.3, retries=0, poll_interval_s=0.5, **kw)


async def test_every_poll_follows_the_served_values_across_full_polls():
    rmap = load_map("sunspec_storage")
    srv = ModbusImageServer()
    srv.add_device(1, rmap.encode({"power_w": 0.0, "soc": 0.5, "max_charge_w": 5000.0}))
    await srv.start()
    link = ModbusLink(battery_cfg(srv.port).connection, 0.3)
    try:
        dev = make_device(battery_cfg(srv.port), link)
        poller = ConnectionPoller(link, [dev])
        for i in range(2 * rmap.slow_every + 3):
            power = float(100 * (i // 2))  # unchanged on every other poll: cache hits
            srv.update(1, rmap.encode({"power_w": power, "soc": 0.5, "max_charge_w": 5000.0 + i}))
            snap, = await poller.poll_once()
            assert snap.values["power_w"] == power, i
            # the nameplate (model 702) is slow and outside the fast blocks: full polls only
            last_full = (i // rmap.slow_every) * rmap.slow_every
            assert snap.values["max_charge_w"] == 5000.0 + last_full, i
            assert snap.quality is Quality.GOOD
    finally:
        link.close()
        await srv.stop()


async def test_failing_device_backs_off_exponentially_and_is_unavailable_after_three():
    port, = free_ports(1)  # nothing listens: connection refused
    cfg = battery_cfg(port)
    link = ModbusLink(cfg.connection, 0.3)
    dev = make_device(cfg, link)
    poller = ConnectionPoller(link, [dev], PollPolicy(fail_threshold=3, backoff_max_s=1.5))
    st = poller._states[0]
    waits = []
    for _ in range(5):
        before = time.monotonic()
        snaps = await poller.poll_once()
        waits.append(st.due - before)
        if st.failures < 3:
            assert snaps == [] and dev.available
    assert not dev.available and dev.latest.quality is Quality.UNAVAILABLE
    assert "cannot connect" in dev.latest.reason
    # 0.5, 1.0, then capped at 1.5 s (each computed after the poll, so allow its duration)
    for got, want in zip(waits, [0.5, 1.0, 1.5, 1.5, 1.5]):
        assert want <= got <= want + 0.5
    link.close()


def test_fleet_builds_outside_an_event_loop():
    from drivers.fleet import DriverFleet

    from driver_helpers import fast_config

    cfg = fast_config("three-homes.yaml")
    cfg.devices.append(Device(id="rtu-meter", kind="meter", register_map="sdm630",
                              connection={"type": "rtu", "port": "/dev/ttyUSB0", "device_id": 2}))
    fleet = DriverFleet(cfg)  # pymodbus clients are only built on first use
    assert len(fleet.pollers) == 5 and fleet.latest("feeder") is None
    assert fleet.available("rtu-meter")
