"""SunSpec discovery relocates a map onto a device whose chain differs from the map's."""
from __future__ import annotations

import pytest
import yaml

from drivers.device import make_device
from drivers.modbus import ModbusLink
from drivers.registermap import MAPS_DIR, parse_map
from drivers.server import ModbusImageServer
from drivers.sunspec import SunSpecError, discover
from vpp.config import Device

VALUES = {"power_w": 3456.0, "rating_w": 6000.0, "power_limit_w": 3000.0, "energy_wh": 777.0,
          "frequency_hz": 49.98}


def variant(base: int, models: list[int]):
    data = yaml.safe_load((MAPS_DIR / "sunspec_inverter.yaml").read_text())
    data["sunspec"]["base"] = base
    data["sunspec"]["models"] = models
    data["registers"] = [r for r in data["registers"]
                         if "point" not in r or int(r["point"].split(".")[0]) in models]
    data["sunspec"]["scale_factors"] = {k: v for k, v in data["sunspec"]["scale_factors"].items()
                                        if int(k.split(".")[0]) in models}
    if 123 not in models:
        data["controls"] = {}
    return parse_map(data, "variant")


async def serve(rmap) -> ModbusImageServer:
    srv = ModbusImageServer()
    srv.add_device(3, rmap.encode(VALUES), writable=rmap.writable())
    await srv.start()
    return srv


def device_cfg(port: int) -> Device:
    return Device(id="pv-x", kind="pv", register_map="sunspec_inverter",
                  connection={"host": "127.0.0.1", "port": port, "device_id": 3},
                  ratings={"power_w": 6000}, timeout_s=0.5, retries=0)


async def test_discovery_relocates_registers():
    # marker at 50000, an extra model (122) before 103, models in another order
    device_map = variant(50000, [1, 122, 120, 103, 704, 123])
    srv = await serve(device_map)
    try:
        link = ModbusLink(device_cfg(srv.port).connection, 0.5)
        base, chain = await discover(link, 3)
        assert base == 50000 and [m for m, _, _ in chain] == [1, 122, 120, 103, 704, 123]
        dev = make_device(device_cfg(srv.port), link)
        assert dev.map.registers["power_w"].address != device_map.registers["power_w"].address
        snap = await dev.read()
        for k, v in VALUES.items():
            assert snap.values[k] == pytest.approx(v), k
        assert dev.map.registers["power_w"].address == device_map.registers["power_w"].address
        await dev.set_power_limit(1500, revert_s=60)  # writes land on the relocated model 123
        assert device_map.decode(srv.image(3))["power_limit_w"] == pytest.approx(1500)
        link.close()
    finally:
        await srv.stop()


async def test_missing_model_is_reported():
    srv = await serve(variant(40000, [1, 103, 120]))  # no controls models
    try:
        link = ModbusLink(device_cfg(srv.port).connection, 0.5)
        dev = make_device(device_cfg(srv.port), link)
        with pytest.raises(SunSpecError, match="no model 123"):
            await dev.read()
        link.close()
    finally:
        await srv.stop()
