"""``vpp devices read|write`` against the simulated site (CLI in a subprocess)."""
from __future__ import annotations

import asyncio
import json
import sys

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
