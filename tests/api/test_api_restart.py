"""kill -9 between award and dispatch: the award, its reserved headroom and the dispatch
survive in the ledger and the book is rebuilt at startup."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.testkit.wait import wait_until_sync
from tests.api.conftest import site_config
from vpp.config import updated

CHILD = Path(__file__).with_name("serve_child.py")


def start(cfg_file: Path, tmp_path: Path) -> tuple[subprocess.Popen, str]:
    port_file = tmp_path / f"port-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, str(CHILD), str(cfg_file), str(port_file)])
    def port() -> str | None:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        return port_file.exists() and port_file.read_text()
    try:
        return proc, f"http://127.0.0.1:{wait_until_sync(port, 10.0, interval_s=0.02, what='the server port')}"
    except AssertionError:
        proc.kill()
        raise


def kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_award_and_dispatch_survive_sigkill(tmp_path, key_file):
    path, keys = key_file
    cfg = updated(site_config(tmp_path), api={"keys_path": str(path)},
                  vpp={"duration_s": 1800})  # a 30-min product: the SoC-based flexibility holds a slot's kW for 30 min
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(cfg.model_dump_json())
    now = datetime.now(UTC)
    s1 = datetime.fromtimestamp((now.timestamp() // 1800 + 4) * 1800, UTC)  # ≥ 1.5 h ahead
    op = {"X-API-Key": keys["operator"]}
    ag = {"X-API-Key": keys["aggregator"]}
    proc, url = start(cfg_file, tmp_path)
    try:
        with httpx.Client(base_url=url, timeout=5) as c:
            offer = c.post("/api/v1/offers", headers={**op, "Idempotency-Key": "o1"},
                           json={"override": "award-side rules under test", "slots": [{"start": iso(s1), "capacity_kw": 50}]}).json()
            # SoC 0.6, floor 30 %, 30-min product: 100 kWh × 0.3 × 0.95 / 0.5 h = 57 kW > 50 kW rating
            award = c.post("/api/v1/awards", headers={**ag, "Idempotency-Key": "a1"},
                           json={"offer_id": offer["id"], "slots": [{"start": iso(s1), "capacity_kw": 30}]}).json()
            assert award["status"] == "accepted"
        kill9(proc)
        proc, url = start(cfg_file, tmp_path)
        with httpx.Client(base_url=url, timeout=5) as c:
            assert c.get(f"/api/v1/awards/{award['id']}", headers=ag).json()["status"] == "accepted"
            # the reserved headroom survived: a second award only gets 50 − 30 = 20 kW
            offer2 = c.post("/api/v1/offers", headers={**op, "Idempotency-Key": "o2"},
                            json={"override": "award-side rules under test", "slots": [{"start": iso(s1), "capacity_kw": 50}]}).json()
            a2 = c.post("/api/v1/awards", headers={**ag, "Idempotency-Key": "a2"},
                        json={"offer_id": offer2["id"], "slots": [{"start": iso(s1), "capacity_kw": 40}]}).json()
            assert (a2["status"], a2["slots"][0]["accepted_kw"]) == ("partial", 20.0)
            body = {"award_id": award["id"], "type": "delta", "start": iso(s1), "end": iso(s1 + timedelta(minutes=30)),
                    "value_kw": 30}
            d = c.post("/api/v1/dispatches", headers={**ag, "Idempotency-Key": "d1"}, json=body)
            assert d.status_code == 201 and d.json()["status"] == "accepted", d.text
        kill9(proc)
        proc, url = start(cfg_file, tmp_path)
        with httpx.Client(base_url=url, timeout=5) as c:
            got = c.get(f"/api/v1/dispatches/{d.json()['id']}", headers=ag).json()
            assert (got["status"], got["accepted_kw"], got["state"]) == ("accepted", 30.0, "pending")
            again = c.post("/api/v1/dispatches", headers={**ag, "Idempotency-Key": "d1"}, json=body)
            assert again.headers.get("Idempotent-Replayed") == "true" and again.json()["id"] == got["id"]
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
