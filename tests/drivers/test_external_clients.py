"""Third-party clients agree with our decode: Debian ``mbpoll`` and pysunspec2's scanner."""
from __future__ import annotations

import asyncio
import re
import shutil

import pytest

from simulators.clock import SimClock
from simulators.site import SimulatedSite

from driver_helpers import NOON_JST, fast_config

MBPOLL = shutil.which("mbpoll") or "/usr/bin/mbpoll"


@pytest.fixture
async def site_and_fleet():
    from drivers.fleet import DriverFleet

    cfg = fast_config("community-centre.yaml")
    site = SimulatedSite(cfg, SimClock(NOON_JST, speed=0), auto_ev_sessions=False)
    await site.start()
    site.step(1)
    fleet = DriverFleet(cfg)
    await fleet.poll_once()
    try:
        yield site, fleet
    finally:
        await fleet.stop()
        await site.stop()


async def mbpoll(*args: str) -> dict[int, str]:
    """Run mbpoll once; returns {reference: printed value}."""
    proc = await asyncio.create_subprocess_exec(MBPOLL, "-m", "tcp", "-1", "-o", "2", *args,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    return {int(m[1]): m[2] for m in re.finditer(r"^\[(\d+)\]:\s+(\S+)", out.decode(), re.M)}


@pytest.mark.skipif(not shutil.which("mbpoll"), reason="Debian mbpoll not installed")
async def test_mbpoll_reads_what_we_decode(site_and_fleet):
    site, fleet = site_and_fleet
    host, port, unit = site.endpoints["meter1"]
    # SDM630: float32 input registers, high word first; -0 = 0-based (PDU) references
    got = await mbpoll("-a", str(unit), "-0", "-r", "52", "-c", "1", "-t", "3:float", "-B",
                       "-p", str(port), host)
    assert float(got[52]) == pytest.approx(fleet.latest("meter1").values["power_w"], rel=1e-6)

    host, port, unit = site.endpoints["pv1"]
    # mbpoll's default 1-based reference 40001 is protocol address 40000: the "SunS" marker
    got = await mbpoll("-a", str(unit), "-r", "40001", "-c", "4", "-t", "4:hex",
                       "-p", str(port), host)
    assert [int(got[r], 16) for r in (40001, 40002, 40003)] == [0x5375, 0x6E53, 1]
    dev = fleet.device("pv1")
    w = dev.map.registers["power_w"]
    sf = dev.map.registers[w.sf]
    got = await mbpoll("-a", str(unit), "-0", "-r", str(w.address), "-c", "1", "-t", "4:hex",
                       "-p", str(port), host)
    got_sf = await mbpoll("-a", str(unit), "-0", "-r", str(sf.address), "-c", "1", "-t", "4:hex",
                          "-p", str(port), host)
    raw, exp = int(got[w.address], 16), int(got_sf[sf.address], 16)
    raw -= 0x10000 if raw & 0x8000 else 0
    exp -= 0x10000 if exp & 0x8000 else 0
    assert raw * 10.0 ** exp == pytest.approx(fleet.latest("pv1").values["power_w"])


def _scan(host: str, port: int, unit: int) -> dict[int, dict]:
    """pysunspec2 scan (blocking) → {model id: {point: scaled value}}."""
    from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

    d = SunSpecModbusClientDeviceTCP(slave_id=unit, ipaddr=host, ipport=port, timeout=2)
    try:
        d.scan()
        out = {}
        for mid, models in d.models.items():
            if isinstance(mid, int):
                out[mid] = {name: p.cvalue for name, p in models[0].points.items()}
        return out
    finally:
        d.close()


async def test_pysunspec2_scan_finds_our_models_and_values(site_and_fleet):
    site, fleet = site_and_fleet
    for dev_id, models in (("pv1", [1, 103, 120, 123, 704]), ("bat1", [1, 701, 702, 704, 713])):
        host, port, unit = site.endpoints[dev_id]
        scanned = await asyncio.to_thread(_scan, host, port, unit)
        assert sorted(scanned) == sorted(models)
        dev = fleet.device(dev_id)
        assert [m for m, _ in dev.map.layout] == models
        ours = fleet.latest(dev_id).values
        compared = []
        for name, reg in dev.map.registers.items():
            if reg.hidden or name not in ours or reg.lookup or reg.percent_of:
                continue
            model_id = next(m for m, a in reversed(dev.map.layout) if a <= reg.address)
            point = next(p for p in scanned[model_id]
                         if dev.map.registers[name].address ==
                         dict(dev.map.layout)[model_id] + _offset(model_id, p))
            theirs = scanned[model_id][point] * reg.scale
            assert theirs == pytest.approx(ours[name], rel=1e-9, abs=1e-9), (dev_id, name)
            compared.append(name)
        assert {"power_w", "rating_w"} <= set(compared) and len(compared) >= 8, compared


def _offset(model_id: int, point: str) -> int:
    from drivers.sunspec_models import model_def

    p = model_def(model_id).points.get(point)
    return -1 if p is None else p.offset
