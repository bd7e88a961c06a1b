"""A simulated site over real Modbus TCP on loopback, read with a bare pymodbus client.

Checks that the served images decode (with the device's own RegisterMap) to the models'
values, that client writes reach the models, and that each injected fault behaves.
"""
from __future__ import annotations

import asyncio
import re
import shutil

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from drivers.protocols import FIELDS
from drivers.registermap import RegisterMap
from simulators.site import SimulatedSite, with_free_ports

SLOW_S = 1.0       # server delay of the "slow" fault
TIMEOUT_S = 0.25   # client timeout, well below SLOW_S


@pytest.fixture
async def site(clock, config):
    s = SimulatedSite(with_free_ports(config), clock, auto_ev_sessions=False,
                      slow_delay_s=SLOW_S)
    await s.start()
    yield s
    await s.stop()


async def _client(site: SimulatedSite, dev: str) -> AsyncModbusTcpClient:
    host, port, _ = site.endpoints[dev]
    c = AsyncModbusTcpClient(host, port=port, timeout=TIMEOUT_S, retries=0, reconnect_delay=0)
    assert await c.connect()
    return c


async def _read_image(c: AsyncModbusTcpClient, rmap: RegisterMap, unit: int) -> dict:
    img = {}
    for b in rmap.blocks():
        read = c.read_input_registers if b.table == "input" else c.read_holding_registers
        r = await read(b.start, count=b.count, device_id=unit)
        assert not r.isError(), (b, r)
        img.update({(b.table, b.start + i): w for i, w in enumerate(r.registers)})
    return img


def _tolerance(name: str, value: float) -> float:
    resolution = 1.0 if name.endswith(("_w", "_wh")) else 0.01
    return max(abs(value) * 2e-3, resolution)


@pytest.mark.parametrize("dev", ["pv1", "bat1", "meter1", "ev1"])
async def test_served_image_decodes_to_model_values(site, dev):
    site.models["ev1"].plug(need_wh=20_000.0)
    site.models["bat1"].apply_write({"setpoint_w": -1234.0, "setpoint_enabled": 1})
    site.step(30.0)
    c = await _client(site, dev)
    try:
        rmap = site.register_map(dev)
        decoded = rmap.decode(await _read_image(c, rmap, site.endpoints[dev][2]))
    finally:
        c.close()
    model = site.models[dev].values()
    checked = [f for f in FIELDS[site.models[dev].kind] if f in decoded]
    assert "power_w" in checked
    for f in checked:
        assert decoded[f] == pytest.approx(model[f], abs=_tolerance(f, model[f])), f
    assert model["power_w"] != 0  # a live value, not a default


async def test_client_writes_change_the_models(site):
    bat, ev = site.models["bat1"], site.models["ev1"]
    ev.plug(need_wh=20_000.0)
    c = await _client(site, "bat1")
    try:
        rmap = site.register_map("bat1")
        unit = site.endpoints["bat1"][2]
        image = await _read_image(c, rmap, unit)
        for table, address, words in rmap.encode_write(
                {"setpoint_w": -1500.0, "setpoint_revert_s": 600.0, "setpoint_enabled": 1}, image):
            r = await c.write_registers(address, words, device_id=unit)
            assert not r.isError()
        assert bat.writes == 3
        site.step(10.0)
        assert bat.power_w == -1500.0
        decoded = rmap.decode(await _read_image(c, rmap, unit))
        assert decoded["setpoint_w"] == pytest.approx(-1500.0, abs=1)
        assert decoded["power_w"] == pytest.approx(-1500.0, abs=1)
        # a read-only register refuses writes: 0x02 ILLEGAL DATA ADDRESS
        soc_addr = rmap.registers["soc"].address
        r = await c.write_register(soc_addr, 1, device_id=unit)
        assert r.isError() and r.exception_code == 2
        assert bat.writes == 3
    finally:
        c.close()
    c = await _client(site, "ev1")
    try:
        rmap = site.register_map("ev1")
        unit = site.endpoints["ev1"][2]
        image = await _read_image(c, rmap, unit)
        for table, address, words in rmap.encode_write({"current_limit_a": 10.0}, image):
            assert not (await c.write_registers(address, words, device_id=unit)).isError()
        site.step(5.0)
        assert ev.current_limit_a == 10.0 and ev.power_w == pytest.approx(2300.0)
    finally:
        c.close()


async def test_fault_exception_answers_modbus_exception(site):
    c = await _client(site, "pv1")
    try:
        await site.inject("pv1", "exception")
        r = await c.read_holding_registers(40000, count=2, device_id=1)
        assert r.isError() and r.exception_code == 0x04
        await site.inject("pv1", None)
        r = await c.read_holding_registers(40000, count=2, device_id=1)
        assert r.registers == [0x5375, 0x6E53]  # "SunS"
    finally:
        c.close()


async def test_fault_frozen_stops_updating_values(site):
    bat = site.models["bat1"]
    rmap = site.register_map("bat1")
    unit = site.endpoints["bat1"][2]
    c = await _client(site, "bat1")
    try:
        await site.inject("bat1", "frozen")
        before = rmap.decode(await _read_image(c, rmap, unit))
        bat.apply_write({"setpoint_w": 3000.0, "setpoint_enabled": 1})
        site.step(60.0)
        assert bat.power_w == 3000.0
        frozen = rmap.decode(await _read_image(c, rmap, unit))
        assert frozen["power_w"] == before["power_w"] == 0.0
        assert frozen["soc"] == before["soc"]
        await site.inject("bat1", None)
        site.step(1.0)
        live = rmap.decode(await _read_image(c, rmap, unit))
        assert live["power_w"] == pytest.approx(3000.0, abs=1)
    finally:
        c.close()


async def test_fault_slow_exceeds_client_timeout(site):
    c = await _client(site, "pv1")
    try:
        await site.inject("pv1", "slow")
        with pytest.raises(ModbusIOException):
            await c.read_holding_registers(40000, count=2, device_id=1)
        await site.inject("pv1", None)
        await asyncio.sleep(SLOW_S)  # let the delayed answer drain before the next request
        r = await c.read_holding_registers(40000, count=2, device_id=1)
        assert r.registers == [0x5375, 0x6E53]
    finally:
        c.close()


async def test_fault_offline_stops_answering_and_refuses_connections(site):
    # bat1 shares its port with pv1: only bat1 goes silent
    c = await _client(site, "pv1")
    try:
        await site.inject("bat1", "offline")
        with pytest.raises(ModbusIOException):
            await c.read_holding_registers(40000, count=2, device_id=site.endpoints["bat1"][2])
        r = await c.read_holding_registers(40000, count=2, device_id=site.endpoints["pv1"][2])
        assert r.registers == [0x5375, 0x6E53]
    finally:
        c.close()
    # meter1 is alone on its port: the port closes
    await site.inject("meter1", "offline")
    host, port, unit = site.endpoints["meter1"]
    refused = AsyncModbusTcpClient(host, port=port, timeout=TIMEOUT_S, retries=0, reconnect_delay=0)
    assert not await refused.connect()
    refused.close()
    await site.inject("meter1", None)
    c = await _client(site, "meter1")
    try:
        r = await c.read_input_registers(0x0034, count=2, device_id=unit)
        assert not r.isError()
    finally:
        c.close()


async def test_unknown_fault_is_rejected(site):
    with pytest.raises(ValueError):
        site.inject("pv1", "melted")


@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll not installed (make sysdeps)")
async def test_third_party_client_mbpoll_reads_and_writes(site):
    """Interop with an independent Modbus implementation (libmodbus via mbpoll)."""
    site.step(1.0)
    host, port, unit = site.endpoints["meter1"]

    async def mbpoll(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "mbpoll", "-m", "tcp", "-a", str(unit), "-p", str(port), "-1", "-o", "2",
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 0, err.decode()
        return out.decode()

    # SDM630 total power: input register 0x0034 (1-based 53), float32 big-endian words
    out = await mbpoll("-t", "3:float", "-B", "-r", "53", "-c", "1", host)
    value = float(re.search(r"\[53\]:\s*(\S+)", out).group(1))
    assert value == pytest.approx(site.models["meter1"].power_w, rel=1e-4)
    # Phoenix EVSE current limit: holding register 528 (1-based 529)
    host, port, unit = site.endpoints["ev1"]
    await mbpoll("-t", "4", "-r", "529", host, "12")
    assert site.models["ev1"].current_limit_a == 12.0


async def test_unknown_device_id_gets_no_answer(site):
    c = await _client(site, "pv1")
    try:
        with pytest.raises(ModbusIOException):
            await c.read_holding_registers(40000, count=2, device_id=99)
        r = await c.read_holding_registers(40000, count=2, device_id=site.endpoints["pv1"][2])
        assert r.registers == [0x5375, 0x6E53]
    finally:
        c.close()
