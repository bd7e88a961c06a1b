"""Append-only settlement ledger in SQLite (stdlib ``sqlite3``).

Contract
--------
* One table ``records``; rows are only ever inserted. SQLite triggers abort any UPDATE or
  DELETE, so even a stray SQL statement cannot rewrite history.
* Each record: ``seq`` (insertion order), ``id`` (uuid4 hex), ``kind`` (one of
  :data:`KINDS`), ``ts`` (UTC), ``actor`` (who), ``payload`` (JSON object: what), optional
  ``ref`` (id of a related record, e.g. award → offer), ``idempotency_key`` (UNIQUE),
  ``request_hash`` (SHA-256 of the request that created it) and optional
  ``algorithm_version`` / ``tariff_version`` / ``co2_version``.
* Idempotency: appending with a key already stored returns the stored record when the
  request hash matches, and raises :class:`IdempotencyConflict` when it differs.
* Durability: WAL journal with ``synchronous=FULL``; a committed append survives a killed
  process.
* Tamper evidence: every record carries ``prev_hash`` (the previous record's ``hash``, ``""``
  for the first hashed record) and ``hash`` = SHA-256 over ``prev_hash`` and the record's
  stored fields (:func:`record_hash`). :func:`verify_chain` walks the chain in ``seq`` order
  and names the first record whose hash or link does not match. Ledgers written before the
  chain existed get the two columns added on open (``ALTER TABLE``); their old rows keep
  ``hash`` NULL and are reported as *unchained* (history cannot be attested after the
  fact), the chain starts at the first hashed record. An unhashed record after a hashed
  one is a break.

Thread-safe within one process (one connection behind a lock); the file may be opened by
several processes, SQLite serialises writers.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KINDS = ("offer", "award", "dispatch", "ack", "baseline_plan", "performance", "policy_change", "audit")

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width so text order == time order

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS records (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    kind              TEXT NOT NULL CHECK (kind IN ({", ".join(f"'{k}'" for k in KINDS)})),
    ts                TEXT NOT NULL,
    actor             TEXT NOT NULL,
    payload           TEXT NOT NULL CHECK (json_valid(payload)),
    ref               TEXT,
    idempotency_key   TEXT UNIQUE,
    request_hash      TEXT NOT NULL,
    algorithm_version TEXT,
    tariff_version    TEXT,
    co2_version       TEXT,
    prev_hash         TEXT,
    hash              TEXT
);
CREATE INDEX IF NOT EXISTS records_ts ON records (ts);
CREATE INDEX IF NOT EXISTS records_kind_ref ON records (kind, ref);
CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'ledger is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'ledger is append-only: DELETE refused'); END;
"""

_COLUMNS = ("seq", "id", "kind", "ts", "actor", "payload", "ref", "idempotency_key", "request_hash",
            "algorithm_version", "tariff_version", "co2_version")
#: Stored fields covered by a record's hash, in hashing order (``payload`` as stored text).
_HASHED = _COLUMNS[1:]
_CHAIN_COLUMNS = ("prev_hash", "hash")


class LedgerError(RuntimeError):
    """The ledger refused an operation."""


class IdempotencyConflict(LedgerError):
    """An idempotency key was replayed with a different request; ``existing`` is the original."""

    def __init__(self, key: str, existing: "LedgerRecord") -> None:
        super().__init__(f"idempotency key {key!r} was already used for a different request")
        self.key = key
        self.existing = existing


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record to append. ``request_hash`` defaults to the hash of (kind, actor, payload, ref)."""

    kind: str
    actor: str
    payload: dict[str, Any]
    ref: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    algorithm_version: str | None = None
    tariff_version: str | None = None
    co2_version: str | None = None
    ts: datetime | None = None
    #: record id to use (uuid4 hex when None): lets one transaction reference a record it
    #: appends in the same batch (a dispatch's ack names the dispatch)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    seq: int
    id: str
    kind: str
    ts: datetime
    actor: str
    payload: dict[str, Any] = field(hash=False)
    ref: str | None
    idempotency_key: str | None
    request_hash: str
    algorithm_version: str | None
    tariff_version: str | None
    co2_version: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``ts`` as ISO 8601 UTC)."""
        return {c: (format_ts(self.ts) if c == "ts" else getattr(self, c)) for c in _COLUMNS}


def canonical_hash(obj: Any) -> str:
    """SHA-256 hex of the canonical JSON form (sorted keys, no whitespace)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def record_hash(prev_hash: str, fields: Sequence[Any]) -> str:
    """SHA-256 hex linking a record to its predecessor: over ``prev_hash`` and the stored
    values of :data:`_HASHED` (NULL as JSON null), as one canonical JSON array."""
    text = json.dumps([prev_hash, *fields], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Result of :func:`verify_chain`: ``ok`` when every hashed record links to its
    predecessor and matches its stored fields. ``broken_seq`` / ``broken_id`` name the first
    record that does not, ``reason`` says how."""

    ok: bool
    records: int
    hashed: int
    unchained: int  #: legacy records before the first hashed one
    broken_seq: int | None = None
    broken_id: str | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "hashed": self.hashed, "unchained": self.unchained,
                "broken_seq": self.broken_seq, "broken_id": self.broken_id, "reason": self.reason}


def verify_chain(conn: sqlite3.Connection) -> ChainReport:
    """Walk the records in ``seq`` order and check the hash chain (read-only; works on raw
    rows, so a payload that is no longer valid JSON is still reported, not raised)."""
    cols = ", ".join(("seq", *_HASHED, *_CHAIN_COLUMNS))
    n = hashed = unchained = 0
    prev: str | None = None  # None until the first hashed record
    for row in conn.execute(f"SELECT {cols} FROM records ORDER BY seq"):
        n += 1
        seq, fields, (prev_hash, h) = row[0], row[1:-2], row[-2:]
        rid = fields[0]
        if h is None:
            if prev is None:
                unchained += 1
                continue
            return ChainReport(False, n, hashed, unchained, seq, rid, "record has no hash after the chain started")
        expected_prev = prev if prev is not None else ""
        if prev_hash != expected_prev:
            return ChainReport(False, n, hashed, unchained, seq, rid,
                               "prev_hash does not match the previous record's hash "
                               "(a record before it was removed, inserted or rewritten)")
        if record_hash(prev_hash, fields) != h:
            return ChainReport(False, n, hashed, unchained, seq, rid, "stored fields do not match the record's hash")
        hashed += 1
        prev = h
    # a removed tail leaves no successor to notice it: AUTOINCREMENT's high-water mark does
    top = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
    last = conn.execute("SELECT MAX(seq) FROM records").fetchone()[0] or 0
    if top is not None and top[0] > last:
        return ChainReport(False, n, hashed, unchained, last + 1, None,
                           f"records {last + 1}..{top[0]} were removed from the end of the ledger")
    return ChainReport(True, n, hashed, unchained)


def format_ts(ts: datetime) -> str:
    if ts.tzinfo is None:
        raise ValueError("ledger timestamps must be timezone-aware")
    return ts.astimezone(UTC).strftime(_TS_FORMAT)


def _parse_ts(text: str) -> datetime:
    return datetime.strptime(text, _TS_FORMAT).replace(tzinfo=UTC)


class SqliteLedgerStore:
    """SQLite persistence for the ledger; see the module docstring for the contract."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add the chain columns to a ledger created before them (existing rows stay unhashed)."""
        have = {r[1] for r in self._conn.execute("PRAGMA table_info(records)")}
        for col in _CHAIN_COLUMNS:
            if col not in have:
                self._conn.execute(f"ALTER TABLE records ADD COLUMN {col} TEXT")

    def verify(self) -> ChainReport:
        """Check the hash chain (see :func:`verify_chain`)."""
        with self._lock:
            return verify_chain(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "SqliteLedgerStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, rec: NewRecord) -> tuple[LedgerRecord, bool]:
        """Append one record; returns ``(record, created)`` (``created`` False on a replay)."""
        return self.append_many([rec])[0]

    def append_many(self, recs: Sequence[NewRecord]) -> list[tuple[LedgerRecord, bool]]:
        """Append records in one transaction: all are stored, or none (on any error)."""
        out: list[tuple[LedgerRecord, bool]] = []
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for rec in recs:
                    out.append(self._insert(rec))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return out

    def _insert(self, rec: NewRecord) -> tuple[LedgerRecord, bool]:
        if rec.kind not in KINDS:
            raise LedgerError(f"unknown record kind {rec.kind!r}")
        if not rec.actor:
            raise LedgerError("every record needs an actor")
        try:
            payload = json.dumps(rec.payload, sort_keys=True, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise LedgerError(f"payload is not plain JSON: {e}") from None
        request_hash = rec.request_hash or canonical_hash([rec.kind, rec.actor, rec.payload, rec.ref])
        if rec.idempotency_key is not None:
            existing = self._one("idempotency_key = ?", (rec.idempotency_key,))
            if existing is not None:
                if existing.request_hash != request_hash or existing.kind != rec.kind:
                    raise IdempotencyConflict(rec.idempotency_key, existing)
                return existing, False
        row = (
            rec.id or uuid.uuid4().hex,
            rec.kind,
            format_ts(rec.ts or datetime.now(UTC)),
            rec.actor,
            payload,
            rec.ref,
            rec.idempotency_key,
            request_hash,
            rec.algorithm_version,
            rec.tariff_version,
            rec.co2_version,
        )
        last = self._conn.execute("SELECT hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        prev_hash = (last[0] or "") if last else ""
        row = (*row, prev_hash, record_hash(prev_hash, row))
        cur = self._conn.execute(f"INSERT INTO records ({', '.join((*_HASHED, *_CHAIN_COLUMNS))}) VALUES "
                                 f"({', '.join('?' * len(row))})", row)
        return self._one("seq = ?", (cur.lastrowid,)), True  # type: ignore[return-value]

    def get(self, record_id: str) -> LedgerRecord | None:
        with self._lock:
            return self._one("id = ?", (record_id,))

    def get_by_key(self, idempotency_key: str) -> LedgerRecord | None:
        with self._lock:
            return self._one("idempotency_key = ?", (idempotency_key,))

    def query(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        kinds: Iterable[str] | None = None,
        ref: str | None = None,
    ) -> list[LedgerRecord]:
        """Records with ``start <= ts < end`` (either bound optional), in insertion order."""
        where, args = ["1=1"], []
        if start is not None:
            where.append("ts >= ?")
            args.append(format_ts(start))
        if end is not None:
            where.append("ts < ?")
            args.append(format_ts(end))
        if kinds is not None:
            ks = list(kinds)
            where.append(f"kind IN ({', '.join('?' * len(ks))})")
            args.extend(ks)
        if ref is not None:
            where.append("ref = ?")
            args.append(ref)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM records WHERE {' AND '.join(where)} ORDER BY seq", args
            ).fetchall()
        return [_to_record(r) for r in rows]

    def _one(self, where: str, args: tuple) -> LedgerRecord | None:
        row = self._conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM records WHERE {where}", args).fetchone()
        return _to_record(row) if row else None


def _to_record(row: tuple) -> LedgerRecord:
    d = dict(zip(_COLUMNS, row))
    d["ts"] = _parse_ts(d["ts"])
    d["payload"] = json.loads(d["payload"])
    return LedgerRecord(**d)
