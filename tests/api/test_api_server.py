"""The app under a real uvicorn server on a loopback port: lifespan, auth, one POST."""
from __future__ import annotations

import asyncio
import socket

import httpx
import uvicorn

from tests.testkit.wait import wait_until
from vpp.api.app import SiteServices, create_app
from vpp.market.flexibility import BatteryFlexibility
from vpp.market.ledger import Ledger
from vpp.config import updated


async def test_served_over_loopback_tcp(key_file, make_config):
    path, keys = key_file
    cfg = updated(make_config(), api={"keys_path": str(path)})
    app = create_app(cfg, SiteServices(BatteryFlexibility(cfg, lambda _id: 0.7)))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_until(lambda: server.started, 10.0, interval_s=0.02, what="uvicorn started")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
            assert (await c.get("/api/v1/health")).json()["site"] == "test-town"
            assert (await c.post("/api/v1/offers", json={})).status_code == 401
            r = await c.post("/api/v1/offers", json={"slots": [{"start": "2099-01-01T00:00:00Z", "capacity_kw": 1}]},
                             headers={"X-API-Key": keys["operator"], "Idempotency-Key": "tcp-1"})
            assert r.status_code == 201, r.text
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
    # lifespan shutdown closed the ledger; the record is on disk
    led = Ledger.open(cfg.api.ledger_path)
    try:
        assert [r.kind for r in led.query()] == ["offer"]
    finally:
        led.close()
