"""The disaster-reserve policy survives a restart and a crash (kill -9) of the runtime on the
same data directory: the operator's floor and storm mode are replayed from the ledger's
``policy_change`` records before the first plan, and audited as restored.

(Not under tests/dashboard: async tests there run after the Playwright ones, whose sync API
leaves an event loop running.)"""
from __future__ import annotations

import asyncio
import os
import queue
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.testkit.wait import wait_until
from tests.api.test_api_restart import kill9
from vpp.api import views
from vpp.api.auth import create_key
from vpp.commands.demo import simulated_runtime
from vpp.config import read_config, updated
from vpp.control.reserve import StormMode, floor_trajectory
from vpp.control.reserve_policy import restored_policy
from vpp.market.ledger import Ledger
from vpp.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy/examples/community-centre.yaml"  # floor_pct 30 %, storm target 90 %


def runtime(data_dir) -> Runtime:
    return simulated_runtime(read_config(CONFIG), speed=60.0, data_dir=data_dir)


async def put_reserve(url: str, key: str, body: dict) -> dict:
    async with httpx.AsyncClient(base_url=url + "api/v1", headers={"X-API-Key": key}, timeout=30) as c:
        r = await c.put("/reserve", json=body)
        assert r.status_code == 200, r.text
        return r.json()


async def first_plan(rt: Runtime, timeout_s: float = 30.0) -> dict:
    await wait_until(lambda: rt.controller.plan is not None, timeout_s, interval_s=0.1, what="a first plan")
    return views.plan(rt.services)


async def check_restored(rt: Runtime, key: str, deadline: str, reason: str) -> None:
    assert rt.reserve.floor_pct == 50.0  # before the first plan
    assert rt.config.reserve.floor_pct == 30.0  # the config is never changed
    async with httpx.AsyncClient(base_url=rt.url + "api/v1", headers={"X-API-Key": key}, timeout=10) as c:
        st = (await c.get("/status")).json()
        t = datetime.fromisoformat(st["ts"]) + timedelta(hours=1)
        flex = await c.get("/flexibility", params={"start": t.isoformat(), "end": (t + timedelta(hours=1)).isoformat()})
        assert flex.status_code == 200, flex.text
        # storm mode: nothing offered, the code in `reason`, the storm's reason and its setter in `reason_detail`
        want = reason if "op-1" in reason else f"{reason} (set by op-1)"
        assert {(x["available"], x["reason"], x["reason_detail"]) for x in flex.json()["slots"]} == {
            (False, "storm_mode", want)}
    b = st["battery"]
    assert b["floor_setting_pct"] == 50.0 and b["base_floor_pct"] >= 50.0
    assert b["storm"] == {"active": True, "target_pct": 80.0, "deadline": deadline, "reason": reason,
                          "set_by": "op-1"}
    assert st["reserve_restored"]["recorded_by"] == "op-1" and not st["reserve_restored"]["deadline_passed"]
    # the first plan after the restart carries the restored floor and storm ramp (the config
    # default would plan on 30 %)
    slots = (await first_plan(rt))["slots"]
    floors = [s["floor_pct"] for s in slots]
    assert min(floors) >= 50.0 - 0.1 and max(floors) >= 80.0 - 0.1, floors
    audits = [r for r in rt.ledger.query(kinds=["audit"]) if r.payload["action"] == "reserve_restored"]
    assert audits and audits[-1].payload["storm_reason"] == reason and audits[-1].payload["floor_pct"] == 50.0


async def test_operator_reserve_survives_a_restart(tmp_path):
    rt = runtime(tmp_path)
    await rt.start()
    key = create_key(rt.config.api.keys_path, "operator", "op-1")[0]
    try:
        deadline = (rt.now() + timedelta(hours=6)).replace(microsecond=0)
        new = (await put_reserve(rt.url, key, {"floor_pct": 50, "storm": True, "storm_target_pct": 80,
                                               "storm_deadline": deadline.isoformat(),
                                               "reason": "typhoon 24 landfall"}))["reserve"]
        assert new["storm_set_by"] == "op-1" and new["storm_reason"] == "typhoon 24 landfall"
    finally:
        await rt.stop()

    rt = runtime(tmp_path)
    await rt.start()
    try:
        await check_restored(rt, key, deadline.astimezone(timezone.utc).isoformat(), "typhoon 24 landfall")
        # switching it off is replayed too: the next start is back on the floor setting only
        await put_reserve(rt.url, key, {"storm": False, "floor_pct": 35})
    finally:
        await rt.stop()
    rt = runtime(tmp_path)
    await rt.start()
    try:
        assert rt.reserve.floor_pct == 35.0 and not rt.controller.storm.active
        assert views.status(rt.services)["battery"]["storm"]["set_by"] is None
        # an operator floor below the config file's (30 %) does not survive a restart: safety first
        await put_reserve(rt.url, key, {"floor_pct": 20})
    finally:
        await rt.stop()
    rt = runtime(tmp_path)
    await rt.start()
    try:
        assert rt.reserve.floor_pct == 30.0
        assert views.status(rt.services)["reserve_restored"]["config_floor_pct"] == 30.0
    finally:
        await rt.stop()


async def test_operator_reserve_survives_kill_9(tmp_path):
    data = tmp_path / "demo"
    cmd = [sys.executable, "-m", "vpp.cli", "demo", "--config", str(CONFIG), "--port", "0",
           "--data-dir", str(data), "--speed", "60"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
        url = key = None
        out: list[str] = []
        end = time.monotonic() + 40
        while (url is None or key is None) and time.monotonic() < end:
            try:
                line = await asyncio.to_thread(lines.get, timeout=0.5)
            except queue.Empty:
                assert proc.poll() is None, "".join(out)
                continue
            out.append(line)
            url = m.group(1) if (m := re.match(r"dashboard: (\S+)", line)) else url
            key = m.group(1) if (m := re.match(r"operator key: (\S+)", line)) else key
        assert url and key, "".join(out)
        op = create_key(data / "api_keys.json", "operator", "op-1")[0]
        async with httpx.AsyncClient(base_url=url + "api/v1", headers={"X-API-Key": op}, timeout=10) as c:
            now = datetime.fromisoformat((await c.get("/status")).json()["ts"])
        deadline = (now + timedelta(hours=6)).replace(microsecond=0)
        await put_reserve(url, op, {"floor_pct": 50, "storm": True, "storm_target_pct": 80,
                                    "storm_deadline": deadline.isoformat()})
        kill9(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    rt = runtime(data)
    await rt.start()
    try:
        await check_restored(rt, op, deadline.astimezone(timezone.utc).isoformat(), "operator op-1")
    finally:
        await rt.stop()


def _ledger_with(tmp_path, t0: datetime, records: list[tuple[str, dict, dict, str]]) -> list:
    clock = [t0]
    led = Ledger.open(tmp_path / "ledger.sqlite", clock=lambda: clock[0])
    try:
        for actor, old, new, reason in records:
            led.policy_change(actor, "reserve", old, new, reason)
            clock[0] += timedelta(hours=1)
        return led.query(kinds=["policy_change"])
    finally:
        led.close()


def test_legacy_records_and_an_expired_deadline_are_restored(tmp_path):
    """Records from before the storm's reason, activation and actor were recorded: the JMA
    storm keeps its actor and reason although an operator changed the floor afterwards; its
    deadline passed while the process was down, so the floor holds the storm target."""
    t0 = datetime(2026, 9, 18, 7, 0, tzinfo=timezone.utc)
    off = {"floor_pct": 30.0, "storm": False, "storm_target_pct": 90.0, "storm_deadline": None}
    on = {"floor_pct": 30.0, "storm": True, "storm_target_pct": 90.0, "storm_deadline": "2026-09-18T07:30:00+00:00"}
    recs = _ledger_with(tmp_path, t0, [("jma", off, on, "JMA 大雨警報 (03) in force for 0410000"),
                                       ("op-2", on, {**on, "floor_pct": 45.0}, "")])
    got = restored_policy(recs, 90.0)
    assert got["floor_pct"] == 45.0 and got["storm"] and got["set_by"] == "jma"
    assert got["activated_at"] == t0 and got["target"] == 0.9
    # the newest record's reason is the operator's (empty): the storm's is the JMA record's
    assert got["reason"] == "JMA 大雨警報 (03) in force for 0410000"
    storm = StormMode()
    storm.on(got["activated_at"], got["target"], got["deadline"], got["reason"])
    later = t0 + timedelta(days=1)
    assert float(floor_trajectory(0.45, [later], storm)[0]) == 0.9  # expired: at the target


def test_new_records_carry_reason_and_actor_and_bad_ones_are_refused(tmp_path):
    t0 = datetime(2026, 9, 18, 7, 0, tzinfo=timezone.utc)
    off = {"floor_pct": 30.0, "storm": False, "storm_target_pct": 90.0, "storm_deadline": None}
    on = {"floor_pct": 30.0, "storm": True, "storm_target_pct": 90.0, "storm_deadline": "2026-09-18T09:00:00+00:00",
          "storm_reason": "JMA 大雨警報 (03) in force for 0410000", "storm_activated_at": "2026-09-18T06:40:00+00:00",
          "storm_set_by": "jma"}
    recs = _ledger_with(tmp_path, t0, [("jma", off, on, on["storm_reason"]),
                                       ("op-2", on, {**on, "floor_pct": 45.0}, "")])
    got = restored_policy(recs, 90.0)
    assert (got["reason"], got["set_by"], got["floor_pct"]) == (on["storm_reason"], "jma", 45.0)
    assert got["activated_at"] == datetime(2026, 9, 18, 6, 40, tzinfo=timezone.utc)
    assert np.isclose(got["deadline"].timestamp(), datetime(2026, 9, 18, 9, tzinfo=timezone.utc).timestamp())
    (tmp_path / "x").mkdir()
    bad = _ledger_with(tmp_path / "x", t0, [("op", off, {**off, "floor_pct": 120.0}, "")])
    with pytest.raises(ValueError, match="outside"):
        restored_policy(bad, 90.0)
    naive = _ledger_with(tmp_path / "x", t0, [("op", off, {**on, "storm_deadline": "2026-09-18T09:00:00"}, "")])
    with pytest.raises(ValueError, match="time zone"):
        restored_policy(naive, 90.0)


async def wait_for(cond, what: str, timeout_s: float = 20.0):
    return await wait_until(cond, timeout_s, interval_s=0.1, what=what)


async def test_jma_storm_is_restored_and_lifted_by_the_next_poll(tmp_path):
    """A storm the JMA watch raised comes back after a restart as the watch's (its deadline
    passed meanwhile: the floor holds the target), is kept while JMA does not answer and is
    switched off by the first fresh document that lifts the warning (the recorded bulletin,
    months old on the wall clock, is ignored as stale)."""
    import json

    from tests.runtime.test_runtime_jma import DATA, JST, START, Jma

    jma = Jma()
    jma.serve("jma_040000_heavy_rain_issued.json")
    jma.thread.start()

    def jma_runtime(**kw) -> Runtime:
        cfg = updated(read_config(CONFIG), vpp={"jma": {"enabled": True, "url": jma.url, "allow_http": True, "area_code": "0410000"}})
        return simulated_runtime(cfg, speed=60.0, data_dir=tmp_path, jma_poll_s=0.2, **kw)

    try:
        rt = jma_runtime(sim_start=START)
        await rt.start()
        try:
            await wait_for(lambda: rt.controller.storm.active, "JMA storm mode")
            reason = rt.controller.storm.reason
            assert "大雨警報 (03)" in reason and rt.reserve.storm_set_by == "jma"
        finally:
            await rt.stop()

        jma.serve(None)  # JMA down at the restart: nothing to reconcile with yet
        rt = jma_runtime()  # resumes on the wall clock, long after the storm's deadline
        await rt.start()
        try:
            b = views.battery(rt.services)
            assert b["storm"]["active"] and b["storm"]["reason"] == reason and b["storm"]["set_by"] == "jma"
            assert views.status(rt.services)["reserve_restored"]["deadline_passed"]
            assert b["floor_pct"] == rt.config.reserve.storm_target_pct  # expired: at the target
            await wait_for(lambda: rt.controller.alarms.get("jma") is not None, "the jma alarm")
            assert rt.controller.storm.active  # kept while JMA does not answer
            jma.serve("jma_040000_heavy_rain_lifted.json")  # recorded in September: too old now
            await wait_for(lambda: "old" in (getattr(rt.controller.alarms.get("jma"), "reason", "") or ""),
                           "the stale-report alarm")
            assert rt.controller.storm.active  # a stale lifting bulletin does not lift it
            lifted = json.loads((DATA / "jma_040000_heavy_rain_lifted.json").read_text(encoding="utf-8"))
            lifted["reportDatetime"] = rt.now().astimezone(JST).isoformat(timespec="seconds")  # a fresh bulletin
            jma.body = json.dumps(lifted, ensure_ascii=False).encode()
            await wait_for(lambda: not rt.controller.storm.active, "the watch to lift its storm")
            recs = rt.ledger.query(kinds=["policy_change"])
            assert (recs[-1].actor, recs[-1].payload["new"]["storm"]) == ("jma", False)
        finally:
            await rt.stop()
    finally:
        jma.server.shutdown()
        jma.server.server_close()
