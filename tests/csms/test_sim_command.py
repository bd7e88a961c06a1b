"""``vpp sim`` starts the config's simulated OCPP stations, which connect to a running central system."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.testkit.sites import site_data
from tests.testkit.wait import wait_until
from vpp.config import parse_config
from vpp.csms.server import CentralSystem

pytestmark = pytest.mark.runtime  # a child process running the simulator

ROOT = Path(__file__).resolve().parents[2]


async def test_vpp_sim_stations_connect_to_the_service(tmp_path):
    data = site_data("ocpp-car-park")
    data["devices"] = [d for d in data["devices"] if d["id"] in ("cp16", "cp201")]
    cs = CentralSystem(parse_config(data))
    await cs.start()
    data["ocpp"] = {**data["ocpp"], "port": cs.port}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vpp.cli", "sim", "--config", str(path), "--speed", "60", "--interval", "1",
        "--duration", "30", cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        await wait_until(lambda: all(st.booted and st.transaction_id is not None for st in cs.stations.values()), 30)
        await cs.device("cp201").set_current_limit(12.0)
        await wait_until(lambda: cs.latest("cp201").values.get("power_w", 0) > 0, 15)
        assert cs.latest("cp16").values["plugged"] == 1.0
    finally:
        proc.terminate()
        out = (await proc.communicate())[0].decode()
        await cs.stop()
    assert "OCPP 2.0.1" in out and "cp16" in out
