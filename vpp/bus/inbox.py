"""The consumer-side idempotency record: which message ids were already applied.

JetStream delivers at least once (a lost ack, a consumer restart, a re-send outside the
server's de-duplication window); a consumer applies a message only if
:meth:`Inbox.claim` inserts its id, in the same SQLite transaction as the effect it records,
so "applied" and "recorded as applied" cannot disagree after a crash.
It also keeps, per (town, kind), the newest command ``seq`` applied: an older or equal one
arriving later (out of order, replayed) is not applied.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from vpp.bus.outbox import open_db

_SCHEMA = """
CREATE TABLE IF NOT EXISTS applied (
    id TEXT PRIMARY KEY, town TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL,
    at TEXT NOT NULL, outcome TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS newest (
    town TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (town, kind)
);
"""


class Inbox:
    def __init__(self, path: str | Path | sqlite3.Connection) -> None:
        self.db = path if isinstance(path, sqlite3.Connection) else open_db(path)
        self.db.executescript(_SCHEMA)
        self.duplicates = 0  #: deliveries of an id already applied (dropped)

    def seen(self, msg_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM applied WHERE id=?", (msg_id,)).fetchone() is not None

    def newest(self, town: str, kind: str) -> int:
        """Newest ``seq`` applied for (town, kind); -1 if none."""
        row = self.db.execute("SELECT seq FROM newest WHERE town=? AND kind=?", (town, kind)).fetchone()
        return int(row[0]) if row else -1

    def claim(self, msg_id: str, town: str, kind: str, seq: int, at: str, outcome: str,
              *, advance: bool = True) -> bool:
        """Record ``msg_id`` as handled with ``outcome`` (inside the caller's transaction if
        one is open); False (and counted) if it was handled before. ``advance`` moves the
        newest seq of (town, kind) to ``seq``."""
        try:
            self.db.execute("INSERT INTO applied VALUES (?, ?, ?, ?, ?, ?)", (msg_id, town, kind, seq, at, outcome))
        except sqlite3.IntegrityError:
            self.duplicates += 1
            return False
        if advance:
            self.db.execute("INSERT INTO newest VALUES (?, ?, ?) ON CONFLICT(town, kind) DO UPDATE "
                            "SET seq=MAX(seq, excluded.seq)", (town, kind, seq))
        return True

    def outcomes(self, town: str | None = None, kind: str | None = None) -> list[tuple[str, int, str]]:
        """(id, seq, outcome) of handled messages, oldest first."""
        q, args = "SELECT id, seq, outcome FROM applied WHERE 1=1", []
        if town is not None:
            q, args = q + " AND town=?", args + [town]
        if kind is not None:
            q, args = q + " AND kind=?", args + [kind]
        return [(r[0], int(r[1]), r[2]) for r in self.db.execute(q + " ORDER BY rowid", args)]

    def prune(self, before_iso: str, kind: str | None = None) -> int:
        """Forget ids (of ``kind``, default all) handled before ``before_iso``: older than
        anything that can still be redelivered, or whose effect is idempotent anyway; the
        newest seq per (town, kind) is kept."""
        if kind is None:
            return self.db.execute("DELETE FROM applied WHERE at < ?", (before_iso,)).rowcount
        return self.db.execute("DELETE FROM applied WHERE kind=? AND at < ?", (kind, before_iso)).rowcount
