"""``vpp devices read|write`` against the simulated site (CLI in a subprocess)."""
from __future__ import annotations

import asyncio
import json
import sys

import pytest
import yaml

from simulators.clock import SimClock
from simulators.site import SimulatedSite

from driver_helpers import NOON_JST, fast_config


async def vpp(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vpp.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_devices_read_and_write(tmp_path):
    cfg = fast_config("community-centre.yaml")
    cfg = cfg.model_copy(update={"api": cfg.api.model_copy(update={"ledger_path": str(tmp_path / "ledger.sqlite")})})
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    async with SimulatedSite(cfg, SimClock(NOON_JST, speed=0), auto_ev_sessions=False) as site:
        site.step(1)
        rc, out, err = await vpp("devices", "read", "--config", str(path), "--json")
        assert rc == 0, err
        rows = {r["device"]: r for r in map(json.loads, out.splitlines())}
        assert set(rows) == {d.id for d in cfg.devices}
        assert rows["bat1"]["values"]["soc"] == round(site.model("bat1").soc, 3)
        assert rows["meter1"]["quality"] == "good"

        rc, out, err = await vpp("devices", "write", "--config", str(path), "bat1",
                                 "--power-w", "-5000", "--revert-s", "120")
        assert rc == 0, err
        site.step(5)
        assert site.model("bat1").power_w == -5000

        rc, out, err = await vpp("devices", "write", "--config", str(path), "pv1", "--limit-w", "99999")
        assert rc == 3 and "refused" in err
        assert site.server_stats("pv1")["writes"] == 0

        rc, out, err = await vpp("devices", "read", "--config", str(path))
        assert rc == 0 and "bat1" in out and "setpoint_w" in out


async def test_devices_write_is_a_lease_checked_against_the_floor_and_audited(tmp_path):
    from vpp.control.reserve import base_floor, capacity_shares
    from vpp.market.ledger import Ledger

    cfg = fast_config("community-centre.yaml")
    ledger_path = tmp_path / "ledger.sqlite"
    cfg = cfg.model_copy(update={"api": cfg.api.model_copy(update={"ledger_path": str(ledger_path)})})
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    bat = cfg.device("bat1")
    floor = base_floor(cfg.reserve, bat.ratings, capacity_shares(cfg.devices_of("battery"))[bat.id])
    async with SimulatedSite(cfg, SimClock(NOON_JST, speed=0), auto_ev_sessions=False) as site:
        model = site.model("bat1")
        model.soc = floor + 0.3
        site.step(1)
        # no --revert-s: the lease, never 0 ("never revert")
        rc, out, err = await vpp("devices", "write", "--config", str(path), "bat1", "--power-w", "1000")
        assert rc == 0, err
        assert model.revert_s == cfg.optimiser.lease_s
        site.step(1)
        assert model.power_w == 1000
        writes = site.server_stats("bat1")["writes"]

        model.soc = floor  # at the floor: no discharge at all
        site.step(1)
        rc, out, err = await vpp("devices", "write", "--config", str(path), "bat1", "--power-w", "500")
        assert rc == 3 and "reserve floor" in err, err
        # just above it: only what the lease (plus the reading's age) cannot overdraw
        model.soc = floor + 0.001
        site.step(1)
        rc, out, err = await vpp("devices", "write", "--config", str(path), "bat1", "--power-w", "5000")
        assert rc == 3 and "reserve floor" in err and "at most" in err, err
        rc, out, err = await vpp("devices", "write", "--config", str(path), "bat1", "--power-w", "100",
                                 "--revert-s", "0")
        assert rc == 3 and "never reverts" in err, err
        assert site.server_stats("bat1")["writes"] == writes
        # charging is not limited by the floor
        rc, out, err = await vpp("devices", "write", "--config", str(path), "bat1", "--power-w", "-1000")
        assert rc == 0, err

    led = Ledger.open(ledger_path)
    try:
        recs = [r.payload for r in led.query(kinds=["audit"]) if r.payload.get("action") == "device_write"]
    finally:
        led.close()
    assert [r["result"] for r in recs] == ["written", "refused", "refused", "refused", "written"]
    assert recs[0]["revert_s"] == cfg.optimiser.lease_s and recs[0]["power_w"] == 1000
    assert recs[2]["soc"] == pytest.approx(floor + 0.001, abs=1e-3) and recs[2]["max_discharge_w"] < 5000
    assert all(r["device"] == "bat1" for r in recs)
