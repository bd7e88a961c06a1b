"""The settlement ledger against real SQLite files (and a real killed process)."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vpp.market.ledger import IdempotencyConflict, Ledger, LedgerError, NewRecord

T0 = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


@pytest.fixture
def ledger(tmp_path):
    led = Ledger.open(tmp_path / "ledger.sqlite", clock=Clock(T0))
    yield led
    led.close()


def test_append_and_read_back_with_versions(ledger):
    rec, created = ledger.record("performance", "settlement", {"delivered_kwh": 17.5}, ref="award-1",
                                 algorithm_version="erab-high-x-of-y/1", tariff_version="3", co2_version="0.45")
    assert created and rec.kind == "performance" and rec.ts == T0 and rec.actor == "settlement"
    again = ledger.get(rec.id)
    assert again == rec and again.payload == {"delivered_kwh": 17.5}
    assert (again.algorithm_version, again.tariff_version, again.co2_version) == ("erab-high-x-of-y/1", "3", "0.45")
    assert ledger.query(ref="award-1") == [rec]


def test_idempotent_replay_returns_original_and_conflict_on_different_body(ledger):
    first, created = ledger.record("offer", "op", {"kw": 10}, idempotency_key="k1")
    ledger.clock.t = T0 + timedelta(minutes=5)
    replay, created2 = ledger.record("offer", "op", {"kw": 10}, idempotency_key="k1")
    assert created and not created2 and replay == first and replay.ts == T0
    with pytest.raises(IdempotencyConflict) as e:
        ledger.record("offer", "op", {"kw": 11}, idempotency_key="k1")
    assert e.value.existing == first
    assert len(ledger.query()) == 1


def test_update_and_delete_are_refused_by_the_database(ledger, tmp_path):
    rec = ledger.audit("alice", "login")
    conn = sqlite3.connect(tmp_path / "ledger.sqlite")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE records SET actor = 'mallory' WHERE id = ?", (rec.id,))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM records")
    conn.close()
    assert ledger.get(rec.id).actor == "alice"


def test_unknown_kind_and_missing_actor_are_refused_and_batches_are_atomic(ledger):
    with pytest.raises(LedgerError, match="unknown record kind"):
        ledger.record("bribe", "x", {})
    with pytest.raises(LedgerError, match="actor"):
        ledger.record("audit", "", {})
    with pytest.raises(LedgerError, match="not plain JSON"):
        ledger.record("performance", "x", {"ratio": float("nan")})
    with pytest.raises(LedgerError, match="not plain JSON"):
        ledger.record("performance", "x", {"when": datetime.now(UTC)})
    ledger.record("offer", "op", {"kw": 1}, idempotency_key="dup")
    with pytest.raises(IdempotencyConflict):
        ledger.record_many([NewRecord("audit", "op", {"n": 1}),
                            NewRecord("offer", "op", {"kw": 2}, idempotency_key="dup")])
    assert [r.kind for r in ledger.query()] == ["offer"]  # the audit row was rolled back too


def test_export_period_as_json_and_csv(ledger):
    ledger.record("offer", "op", {"kw": 10, "note": "東北"})
    ledger.clock.t = T0 + timedelta(hours=1)
    ledger.policy_change("operator", "reserve.floor_pct", 30, 50, reason="typhoon")
    ledger.clock.t = T0 + timedelta(days=1)
    ledger.audit("op", "late")
    doc = json.loads(ledger.export(T0, T0 + timedelta(hours=2), "json"))
    assert [r["kind"] for r in doc["records"]] == ["offer", "policy_change"]
    assert doc["records"][1]["payload"] == {"policy": "reserve.floor_pct", "old": 30, "new": 50, "reason": "typhoon"}
    assert doc["period"] == {"start": "2026-11-25T05:00:00.000000Z", "end": "2026-11-25T07:00:00.000000Z"}
    rows = list(csv.DictReader(io.StringIO(ledger.export(T0, T0 + timedelta(hours=2), "csv", kinds=["offer"]))))
    assert len(rows) == 1 and rows[0]["kind"] == "offer" and json.loads(rows[0]["payload"])["note"] == "東北"
    assert rows[0]["ts"] == "2026-11-25T05:00:00.000000Z"


_CHILD = """
import sys, time
from vpp.market.ledger import Ledger
led = Ledger.open(sys.argv[1])
rec, _ = led.record("award", "aggregator", {"offer_id": "o1", "kw": 25}, idempotency_key="award-k")
print(rec.id, flush=True)
time.sleep(60)
"""


def test_award_survives_sigkill_of_the_writer(tmp_path):
    path = tmp_path / "ledger.sqlite"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        rec_id = child.stdout.readline().strip()
        assert rec_id
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    led = Ledger.open(path)
    try:
        rec = led.get(rec_id)
        assert rec is not None and rec.kind == "award" and rec.payload == {"offer_id": "o1", "kw": 25}
        assert led.get_by_key("award-k") == rec
    finally:
        led.close()
