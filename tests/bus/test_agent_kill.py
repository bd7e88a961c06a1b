"""``kill -9`` of an edge agent process (``vpp edge run``): after its restart on the same
state directory nothing it had committed is lost, no command is applied twice, and the
commands issued while it was down are applied once on its return."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from tests.bus.harness import outbox_ids, sink_ids
from tests.testkit.wait import wait_until
from vpp.central.service import CentralService

ROOT = Path(__file__).resolve().parents[2]


def agent(url: str, state: Path) -> subprocess.Popen:
    """The town's agent in its own process: 30 homes, town time = wall time."""
    return subprocess.Popen([sys.executable, "-m", "vpp.cli", "edge", "run", "--homes", "30", "--town", "tk",
                             "--bus", url, "--state-dir", str(state), "--step-s", "0.5", "--speed", "1"],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=open(state.parent / "agent.log", "ab"))


def now() -> datetime:
    return datetime.now(timezone.utc)


async def test_kill9_of_an_agent_loses_nothing_and_applies_nothing_twice(nats_server, tmp_path):
    state = tmp_path / "tk"
    central = await CentralService(nats_server.url, tmp_path / "central", ack_wait_s=2.0).start()
    proc = agent(nats_server.url, state)
    try:
        await wait_until(lambda: "tk" in central.state.towns(), 60, what="the agent reporting")
        first = [central.issue("tk", "policy", {"floor_pct": 35.0}),
                 central.issue("tk", "plans", {"start": now().isoformat(), "slot_s": 900, "battery_w": [800.0] * 4})]
        assert all(v is not None for v in (await central.wait_acks([e.id for e in first], 30)).values())
        proc.kill()  # kill -9
        proc.wait()
        down = [central.issue("tk", "policy", {"floor_pct": 40.0}),
                central.issue("tk", "plans", {"start": now().isoformat(), "slot_s": 900, "battery_w": [600.0] * 4})]
        proc = agent(nats_server.url, state)
        acks = await central.wait_acks([e.id for e in down], 60)
        assert all(v is not None for v in acks.values())
        assert [central.state.command(e.id)["ack_status"] for e in first + down] == ["applied"] * 4
        await wait_until(lambda: central.state.towns()["tk"]["status"].get("floor_pct") == 40.0, 30)
        proc.terminate()  # graceful: drains the outbox
        assert proc.wait(30) == 0
        produced = outbox_ids(state, "telemetry")
        assert produced
        await wait_until(lambda: sink_ids(central, "tk") >= produced, 30, what="every committed reading stored")
        assert central.double_acks == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        await central.stop()
