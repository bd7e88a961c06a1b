"""The centre's thin HTTP API over a running centre and a town on the real bus: the town
dimension, the security middleware in front, commands refused with the reason or accepted
and acknowledged by the town."""
from __future__ import annotations

from datetime import timedelta

import httpx

from tests.bus.harness import start_agent, start_central, step
from tests.testkit.wait import wait_until
from vpp.api.auth import create_key
from vpp.api.central_app import create_central_app
from vpp.edge.home_physics import HomesTown


async def test_towns_api_reads_and_commands_with_roles_and_refusals(nats_server, clock, tmp_path):
    town = HomesTown("t1", 10, clock)
    agent = await start_agent(town, nats_server.url, tmp_path)
    central = await start_central(nats_server.url, tmp_path, clock)
    keys = tmp_path / "keys.json"
    op, _ = create_key(keys, "operator", "ops")
    viewer, _ = create_key(keys, "viewer", "screen")
    app = create_central_app(central, str(keys))
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://centre")
    auth = {"Authorization": f"Bearer {op}"}
    try:
        await step([town], clock, 2)
        await wait_until(lambda: "t1" in central.state.towns(), 20, what="the town reporting")
        assert (await api.get("/api/v1/health")).status_code == 200
        assert (await api.get("/api/v1/towns")).status_code == 401  # no key
        r = await api.get("/api/v1/towns", headers={"X-API-Key": viewer})
        assert r.status_code == 200 and [t["town"] for t in r.json()["towns"]] == ["t1"]
        assert (await api.get("/api/v1/towns/nowhere", headers=auth)).status_code == 404
        r = await api.post("/api/v1/towns/t1/reserve", headers={"X-API-Key": viewer}, json={"floor_pct": 40})
        assert r.status_code == 403  # viewers do not command
        r = await api.post("/api/v1/towns/t1/reserve", headers=auth, json={"floor_pct": 140})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "floor_pct"
        r = await api.post("/api/v1/towns/t1/reserve", headers=auth, json={"floor_pct": 10})
        assert r.status_code == 409 and "below_local_floor" in r.json()["detail"]
        start = clock()
        r = await api.post("/api/v1/towns/t1/dispatches", headers=auth, json={
            "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(), "setpoint_kw": 1e5})
        assert r.status_code == 409 and "out_of_range" in r.json()["detail"]
        r = await api.post("/api/v1/towns/t1/reserve", headers=auth, json={"floor_pct": 45, "reason": "typhoon"})
        assert r.status_code == 202
        cmd = r.json()["id"]
        await wait_until(lambda: central.state.command(cmd)["ack_status"] == "applied", 20, what="the town's ack")
        r = await api.get(f"/api/v1/towns/t1/commands/{cmd}", headers=auth)
        assert r.json()["ack"] == "applied" and town.floor_pct == 45.0
        assert (await api.get(f"/api/v1/towns/t2/commands/{cmd}", headers=auth)).status_code == 404
    finally:
        await api.aclose()
        await agent.stop()
        await central.stop()
