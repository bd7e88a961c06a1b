"""Against a running site (the community-centre example at 60×, API on uvicorn):

* a wrong-key flood from another process does not stop the control loop from ticking at
  its cadence nor device readings from arriving at theirs (behaviour, no latency threshold);
* what an aggregator gets from every GET (and the event stream) carries no device or home
  ids and no people's names;
* revoking a key ends its open event stream within a heartbeat; at most four streams per key.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from tests.testkit.wait import wait_until
from vpp.api.auth import create_key, revoke_key
from vpp.commands.demo import simulated_runtime
from vpp.config import read_config, updated
from vpp.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy/examples/community-centre.yaml"
SPEED = 60.0
HEARTBEAT_S = 5.0  # the event stream sends at least this often
NAMES = {"operator": "Hanako Sato", "viewer": "Taro Suzuki", "aggregator": "agg-east"}


def runtime(tmp_path) -> Runtime:
    cfg = read_config(CONFIG)
    # the chargers belong to households: their ids must not reach aggregators either
    devices = [updated(d, home=f"home-{d.id}") if d.kind == "ev_charger" else d for d in cfg.devices]
    return simulated_runtime(updated(cfg, devices=devices), speed=SPEED, data_dir=tmp_path, weather="clear-sky")


async def started(tmp_path) -> tuple[Runtime, dict[str, str]]:
    rt = runtime(tmp_path)
    keys = {role: create_key(rt.config.api.keys_path, role, name)[0] for role, name in NAMES.items()}
    await rt.start()
    await wait_until(lambda: rt.controller.plan is not None, 60, interval_s=0.1, what="a first plan")
    return rt, keys


def _ticks(rt: Runtime) -> tuple:
    return tuple(id(d) for d in rt.controller.decisions.values())


async def test_wrong_key_flood_does_not_stall_control(tmp_path):
    rt, keys = await started(tmp_path)
    try:
        dispatch_wall_s = rt.config.optimiser.dispatch_interval_s / SPEED
        poll_wall_s = max(d.poll_interval_s for d in rt.config.devices)
        flooder = subprocess.Popen([sys.executable, str(ROOT / "bench/security.py"), "--flood", rt.url.rstrip("/"),
                                    "200", "6", "1"], stdout=subprocess.PIPE, text=True)
        try:
            await asyncio.sleep(0.5)
            tick_times, ages, last = [], [], _ticks(rt)
            loop = asyncio.get_running_loop()
            t_end = loop.time() + 5.0
            while loop.time() < t_end:
                now = _ticks(rt)
                if now != last:
                    tick_times.append(loop.time())
                    last = now
                wall = rt.liveness.newest_wall
                ages.append((datetime.now(UTC) - wall).total_seconds())
                await asyncio.sleep(0.05)
            out, _ = await asyncio.to_thread(flooder.communicate, None, 60)
        finally:
            if flooder.poll() is None:
                flooder.kill()
        flood = json.loads(out.strip().splitlines()[-1])
        assert flood["answered"] >= 0.9 * flood["offered"], flood  # the flood did reach the site
        assert set(flood["statuses"]) <= {"401", "429", "503"}, flood
        # the control loop kept its cadence: no gap of three dispatch intervals without a step
        gaps = [b - a for a, b in zip([t_end - 5.0, *tick_times], [*tick_times, t_end])]
        assert tick_times and max(gaps) < 3 * dispatch_wall_s, gaps
        # and readings kept arriving at theirs
        assert max(ages) < 3 * poll_wall_s, max(ages)
    finally:
        await rt.stop()


def _mentions(text: str, word: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_-]){re.escape(word)}(?![A-Za-z0-9_-])", text) is not None


async def test_aggregator_payloads_carry_no_ids_or_names_and_revocation_ends_streams(tmp_path):
    rt, keys = await started(tmp_path)
    try:
        cfg = rt.config
        meter = cfg.grid_meter()
        # the grid meter's id is the site's metering point (its identity towards the market)
        secret_words = {d.id for d in cfg.devices if d is not meter} | {d.home for d in cfg.devices if d.home}
        secret_words |= {NAMES["operator"], NAMES["viewer"]}
        free_text = "typhoon; call Hanako 090-1234-5678"  # the operator's own words
        secret_words |= {free_text, "090-1234-5678"}
        op = {"X-API-Key": keys["operator"]}
        agg = {"X-API-Key": keys["aggregator"]}
        async with httpx.AsyncClient(base_url=rt.url + "api/v1", timeout=30) as c:
            now = datetime.fromisoformat((await c.get("/status", headers=op)).json()["ts"])
            # the operator leaves their name around: storm mode with a reason, an offer, an ack
            r = await c.put("/reserve", headers=op, json={"storm": True, "storm_target_pct": 60,
                                                         "storm_deadline": (now + timedelta(hours=6)).isoformat(),
                                                         "reason": free_text})
            assert r.status_code == 200, r.text
            assert NAMES["operator"] in (await c.get("/status", headers=op)).text
            # the operator and viewers read the storm's reason in the flexibility; aggregators do not
            fwin = {"start": now.isoformat(), "end": (now + timedelta(hours=1)).isoformat()}
            assert free_text in (await c.get("/flexibility", headers=op, params=fwin)).text
            s1 = datetime.fromtimestamp((now.timestamp() // 1800 + 2) * 1800, UTC)
            slot = [{"start": s1.isoformat(), "capacity_kw": 1}]
            offer = (await c.post("/offers", headers={**op, "Idempotency-Key": "o1"},
                                  json={"slots": slot, "direction": "down", "price_per_kwh": 12.0, "override": "award-side rules under test"})).json()
            award = (await c.post("/awards", headers={**agg, "Idempotency-Key": "a1"},
                                  json={"offer_id": offer["id"], "slots": slot})).json()
            disp = await c.post("/dispatches", headers={**agg, "Idempotency-Key": "d1"},
                                json={"award_id": award["id"], "type": "delta", "start": s1.isoformat(),
                                      "end": (s1 + timedelta(minutes=30)).isoformat(), "value_kw": 0.5})
            ids = {"offer_id": offer["id"], "award_id": award["id"], "dispatch_id": disp.json().get("id", "x"),
                   "alarm_id": "x", "token": "x", "charger_id": "x"}
            win = {"start": (now - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0).isoformat(),
                   "end": (now + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0).isoformat()}
            params = {"/flexibility": win, "/baseline": {**win, "method": "plan"}, "/ledger/export": win,
                      "/bids": {"day": now.astimezone(ZoneInfo(cfg.site.timezone)).date().isoformat()}}
            doc = (await c.get("/openapi.json")).json()
            seen = 0
            for path, item in doc["paths"].items():
                if "get" not in item or path.endswith("/stream"):
                    continue
                rel = path.removeprefix("/api/v1")
                url = rel.format(**ids)
                r = await c.get(url, headers=agg, params=params.get(rel))
                assert r.status_code < 500, (url, r.status_code, r.text)
                if r.status_code == 200:
                    seen += 1
                    for w in secret_words:
                        assert not _mentions(r.text, w), (url, w, r.text[:2000])
            assert seen >= 10
            # the aggregator's event stream, then revocation ends it within a heartbeat
            async with c.stream("GET", "/stream", headers=agg) as s:
                lines = s.aiter_lines()
                data = ""
                async for line in lines:
                    if line.startswith("data: "):
                        data = line[6:]
                        break
                assert data and json.loads(data)["status"]
                for w in secret_words:
                    assert not _mentions(data, w), (w, data[:2000])
                agg_id = keys["aggregator"].split("_")[1]
                revoke_key(cfg.api.keys_path, agg_id)
                t0 = time.monotonic()

                async def drain() -> None:
                    async for _ in lines:
                        pass

                await asyncio.wait_for(drain(), HEARTBEAT_S + 2.0)
                assert time.monotonic() - t0 <= HEARTBEAT_S + 2.0
            assert (await c.get("/status", headers=agg)).status_code == 401
            # the operator goes on meanwhile
            assert (await c.get("/status", headers=op)).status_code == 200
            # at most four open streams per key
            viewer = {"X-API-Key": keys["viewer"]}
            async with contextlib.AsyncExitStack() as stack:
                readers = []  # kept referenced: a collected line iterator closes its stream
                for _ in range(4):
                    s = await stack.enter_async_context(c.stream("GET", "/stream", headers=viewer))
                    assert s.status_code == 200
                    readers.append(s.aiter_lines())
                    async for line in readers[-1]:
                        if line.startswith("data: "):
                            break
                fifth = await asyncio.wait_for(stack.enter_async_context(c.stream("GET", "/stream", headers=viewer)), 10)
                assert fifth.status_code == 429
    finally:
        await rt.stop()
