"""Alarm acknowledgements survive a restart of the runtime on the same data directory (they
are replayed from the ledger), and end when the alarm clears."""
from __future__ import annotations

from datetime import datetime, timezone

import httpx

from vpp.api import views
from vpp.api.auth import create_key
from vpp.commands.demo import simulated_runtime
from vpp.config import read_config
from vpp.runtime import Runtime

from .sites import EXAMPLE

KEY = "comms:aggregator"  # an alarm the runtime's own monitor leaves alone


async def start(data_dir) -> Runtime:
    cfg = read_config(EXAMPLE)
    # no plan or dispatch run during the test: only the alarms matter here
    rt = simulated_runtime(cfg, speed=60.0, data_dir=data_dir, first_run_s=(600.0, 600.0, 600.0))
    await rt.start()
    return rt


async def alarms(rt: Runtime, key: str) -> dict:
    async with httpx.AsyncClient(base_url=rt.url + "api/v1", headers={"X-API-Key": key}, timeout=10) as c:
        r = await c.get("/alarms")
        assert r.status_code == 200, r.text
        return {a["id"]: a for a in r.json()}


async def test_ack_survives_restart_and_ends_when_the_alarm_clears(tmp_path):
    rt = await start(tmp_path)
    op = create_key(rt.config.api.keys_path, "operator", "op-1")[0]
    try:
        rt.controller.alarms.raise_(KEY, "aggregator link down", datetime.now(timezone.utc), "warning")
        async with httpx.AsyncClient(base_url=rt.url + "api/v1", headers={"X-API-Key": op}, timeout=10) as c:
            r = await c.post(f"/alarms/{KEY}/ack")
            assert r.status_code == 200, r.text
        assert (await alarms(rt, op))[KEY]["acked_by"] == "op-1"
    finally:
        await rt.stop()

    # restart: the condition is still there, so the alarm is raised again by its source
    rt = await start(tmp_path)
    try:
        rt.controller.alarms.raise_(KEY, "aggregator link down", datetime.now(timezone.utc), "warning")
        a = (await alarms(rt, op))[KEY]
        assert a["active"] and a["acked"] and a["acked_by"] == "op-1"
        assert (await alarms(rt, op))[KEY]["acked"]  # stays acknowledged on every read
        assert views.status(rt.services)["alarms"]["unacked"] == sum(1 for x in rt.controller.alarms.active() if x.key != KEY)
        # it clears and comes back: a new alarm that needs a new acknowledgement
        rt.controller.alarms.clear(KEY, datetime.now(timezone.utc), "link up")
        rt.controller.alarms.raise_(KEY, "aggregator link down again", datetime.now(timezone.utc), "warning")
        assert not (await alarms(rt, op))[KEY]["acked"]
    finally:
        await rt.stop()

    # ... and that holds across the next restart too
    rt = await start(tmp_path)
    try:
        rt.controller.alarms.raise_(KEY, "aggregator link down", datetime.now(timezone.utc), "warning")
        assert not (await alarms(rt, op))[KEY]["acked"]
    finally:
        await rt.stop()
