"""Closed loop on the community-centre example (deploy/examples/community-centre.yaml):
simulated devices on loopback Modbus, the real fleet, store, forecast and optimiser, the
API over ASGI. The plan empties the battery to the reserve floor for the evening and fills
it from PV at midday; a mid-morning slot must still offer up-flexibility (the margin counts
over the delivery only, later planned usage is re-planned), deliverable for vpp.duration_s."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import yaml

from simulators.site import with_free_ports
from tests.api.conftest import closed_loop
from vpp.config import parse_config
from vpp.control.scheduler import run_simulated

CONFIG = Path(__file__).parents[2] / "deploy" / "examples" / "community-centre.yaml"
START = datetime(2026, 6, 21, 22, 30, tzinfo=timezone.utc)  # Mon 22 June 07:30 JST
MORNING = datetime(2026, 6, 22, 1, 0, tzinfo=timezone.utc)  # 10:00 JST


def iso(t):
    return t.isoformat().replace("+00:00", "Z")


@pytest.mark.timeout(120)
async def test_mid_morning_up_flexibility_is_offered_on_the_community_centre(tmp_path, key_file):
    path, keys = key_file
    data = yaml.safe_load(CONFIG.read_text())
    # the premise above is the time-of-use plan (evening peak); the example's default is the
    # JEPX price, whose synthetic morning peak empties the battery before 10:00
    data["prices"], data["bill"] = {"source": "tou"}, {}
    data["storage"] = {"backend": "embedded", "path": str(tmp_path / "vpp.sqlite"), "flush_interval_s": 0.05}
    data["api"] = {**data.get("api", {}), "keys_path": str(path), "ledger_path": str(tmp_path / "ledger.sqlite")}
    for d in data["devices"]:
        d["timeout_s"] = 0.5
    config = with_free_ports(parse_config(data, str(CONFIG)))
    agg = {"Authorization": f"Bearer {keys['aggregator']}"}
    async with closed_loop(config, START, tmp_path, bat_soc=0.5) as cl:
        c, ctl, site, telemetry = cl.client, cl.ctl, cl.site, cl.telemetry
        await run_simulated(ctl, START + timedelta(minutes=30), site.step, refresh=telemetry.refresh)
        assert ctl.plan is not None
        r = await c.get("/api/v1/flexibility", headers=agg,
                        params={"start": iso(MORNING), "end": iso(MORNING + timedelta(hours=1))})
        assert r.status_code == 200, r.text
        slots = r.json()["slots"]
        assert [s["source"] for s in slots] == ["plan", "plan"] and all(s["available"] for s in slots)
        tau_h = config.vpp.duration_s / 3600
        for s in slots:
            assert s["up_kw"] > 1.0, slots
            assert s["up_kw"] * tau_h <= s["up_kwh"] + 1e-6
        # the plan itself later empties to the floor: the old whole-plan minimum offered 0 here
        sched = ctl.plan.schedule
        floor = np.nanmax(sched.floor["bat1"])
        later = np.array(sched.index()) >= MORNING + timedelta(hours=1) + timedelta(seconds=config.vpp.duration_s)
        assert sched.soc["bat1"][later].min() <= floor + 1e-3
