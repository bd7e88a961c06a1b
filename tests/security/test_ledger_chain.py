"""The ledger's hash chain: every record carries its predecessor's hash, and ``vpp ledger
verify`` names the first record that was rewritten, removed or slipped in behind SQLite's
append-only triggers (an attacker with the file can drop them)."""
from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from tests.testkit.sites import make_site
from vpp.cli import main
from vpp.market.ledger import Ledger, NewRecord
from vpp.storage.ledger import SqliteLedgerStore

T0 = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)


def filled(path, n: int = 5) -> list[str]:
    led = Ledger.open(path, clock=lambda: T0)
    try:
        return [led.audit("op", "step", k=k).id for k in range(n)]
    finally:
        led.close()


def tamper(path, sql: str, args: tuple = ()) -> None:
    """Run ``sql`` on the file with the append-only triggers out of the way, as an attacker
    holding the file would."""
    con = sqlite3.connect(path)
    try:
        con.execute("DROP TRIGGER records_no_update")
        con.execute("DROP TRIGGER records_no_delete")
        con.execute(sql, args)
        con.commit()
    finally:
        con.close()


def flip_payload_byte(path, record_id: str) -> None:
    con = sqlite3.connect(path)
    payload = con.execute("SELECT payload FROM records WHERE id = ?", (record_id,)).fetchone()[0]
    con.close()
    b = bytearray(payload.encode())
    i = re.search(r'"k":\s*(\d)', payload).start(1)
    b[i] ^= 0x01  # 2 -> 3: still valid JSON, only the hash can tell
    tamper(path, "UPDATE records SET payload = ? WHERE id = ?", (b.decode(), record_id))


def verify(path):
    store = SqliteLedgerStore(path)
    try:
        return store.verify()
    finally:
        store.close()


def test_an_untouched_ledger_verifies(tmp_path):
    filled(tmp_path / "l.sqlite")
    r = verify(tmp_path / "l.sqlite")
    assert r.ok and r.records == r.hashed == 5 and r.unchained == 0 and r.broken_id is None


def test_a_flipped_payload_byte_is_pinned_to_its_record(tmp_path):
    path = tmp_path / "l.sqlite"
    ids = filled(path)
    flip_payload_byte(path, ids[2])
    r = verify(path)
    assert not r.ok and (r.broken_seq, r.broken_id) == (3, ids[2]) and "hash" in r.reason


def test_a_removed_record_breaks_the_link_of_the_next(tmp_path):
    path = tmp_path / "l.sqlite"
    ids = filled(path)
    tamper(path, "DELETE FROM records WHERE id = ?", (ids[1],))
    r = verify(path)
    assert not r.ok and r.broken_id == ids[2] and "prev_hash" in r.reason


def test_a_removed_tail_is_noticed(tmp_path):
    path = tmp_path / "l.sqlite"
    ids = filled(path)
    tamper(path, "DELETE FROM records WHERE id = ?", (ids[-1],))
    r = verify(path)
    assert not r.ok and r.broken_seq == 5 and "removed" in r.reason


def test_a_legacy_ledger_is_migrated_and_the_chain_starts_at_the_first_hashed_record(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)  # the schema before the chain: no prev_hash / hash columns
    con.execute("""CREATE TABLE records (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL, ts TEXT NOT NULL, actor TEXT NOT NULL, payload TEXT NOT NULL, ref TEXT,
        idempotency_key TEXT UNIQUE, request_hash TEXT NOT NULL, algorithm_version TEXT, tariff_version TEXT,
        co2_version TEXT)""")
    for k in range(3):
        con.execute("INSERT INTO records (id, kind, ts, actor, payload, request_hash) VALUES (?,?,?,?,?,?)",
                    (f"old{k}", "audit", "2026-11-01T00:00:00.000000Z", "op", json.dumps({"k": k}), "h"))
    con.commit()
    con.close()
    led = Ledger.open(path, clock=lambda: T0)
    try:
        assert [r.id for r in led.query()] == ["old0", "old1", "old2"]  # old rows still read
        new = led.audit("op", "after-migration")
        led.audit("op", "after-migration-2")
        r = led.verify()
        assert r.ok and (r.records, r.unchained, r.hashed) == (5, 3, 2)
    finally:
        led.close()
    tamper(path, "UPDATE records SET actor = 'someone-else' WHERE id = ?", (new.id,))
    assert verify(path).broken_id == new.id


def test_cli_verify_names_the_broken_record(tmp_path, capsys):
    ledger_path = tmp_path / "ledger.sqlite"
    cfg = make_site("shelter", api={"ledger_path": str(ledger_path), "keys_path": str(tmp_path / "keys.json")})
    cfg_path = tmp_path / "site.yaml"
    cfg_path.write_text(json.dumps(cfg.model_dump(mode="json")))  # JSON is valid YAML
    ids = filled(ledger_path)
    assert main(["ledger", "verify", "--config", str(cfg_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    flip_payload_byte(ledger_path, ids[3])
    assert main(["ledger", "verify", "--config", str(cfg_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["broken_id"] == ids[3] and report["broken_seq"] == 4
    assert main(["ledger", "verify", "--config", str(cfg_path)]) == 1
    assert ids[3] in capsys.readouterr().out


@pytest.mark.parametrize("n", [1, 30])
def test_the_chain_holds_across_reopen_and_batches(tmp_path, n):
    path = tmp_path / "l.sqlite"
    filled(path, n)
    led = Ledger.open(path, clock=lambda: T0 + timedelta(hours=1))
    try:
        led.record_many([NewRecord("audit", "op", {"i": i}) for i in range(3)])
        assert led.verify().ok and led.verify().hashed == n + 3
    finally:
        led.close()
