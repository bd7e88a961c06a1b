"""The RTU client path: RTU frames over a loopback socket (pyserial's ``socket://`` URL)."""
from __future__ import annotations

import pytest
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.fleet import DriverFleet
from drivers.protocols import Quality
from drivers.registermap import load_map
from vpp.config import parse_config

VALUES = {"power_w": 2345.5, "voltage_v": 229.5, "frequency_hz": 49.95,
          "import_energy_wh": 12000.0, "export_energy_wh": 3000.0}


async def test_rtu_meter_is_polled_over_rtu_framing():
    m = load_map("sdm630")
    img = m.encode(VALUES)
    words = [img.get(("input", a), 0) for a in range(0, 0x4C)]
    bits = [SimData(address=0, values=[False] * 16, datatype=DataType.BITS)]
    regs = [SimData(address=0, values=[0] * 16, datatype=DataType.REGISTERS)]
    dev = SimDevice(id=7, simdata=(bits, bits, regs,
                                   [SimData(address=0, values=words, datatype=DataType.REGISTERS)]))
    server = ModbusTcpServer([dev], address=("127.0.0.1", 0), framer=FramerType.RTU)
    await server.serve_forever(background=True)
    port = server.transport.sockets[0].getsockname()[1]
    cfg = parse_config({
        "site": {"name": "rtu", "latitude": 38.3, "longitude": 140.9},
        "grid": {"import_limit_w": 1e4, "export_limit_w": 1e4},
        "tariff": {"periods": [{"name": "flat", "start": "00:00", "end": "00:00", "buy_per_kwh": 30}]},
        "devices": [{"id": "m-rtu", "kind": "meter", "register_map": "sdm630", "timeout_s": 1.0,
                     "connection": {"type": "rtu", "port": f"socket://127.0.0.1:{port}",
                                    "device_id": 7}}]})
    fleet = DriverFleet(cfg)
    try:
        snaps = await fleet.poll_once()
        s = snaps["m-rtu"]
        assert s is not None and s.quality is Quality.GOOD, fleet.device("m-rtu").last_error
        for k, v in VALUES.items():
            assert s.values[k] == pytest.approx(v, rel=1e-6), k
    finally:
        await fleet.stop()
        await server.shutdown()
