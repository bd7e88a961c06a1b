"""The centre's durable state (SQLite, WAL): commands issued per town with their acks,
awards, the reserve policy sent to each town, and the last status of every town.

A command is committed here (with its id, per-town/kind ``seq`` and lease) *before* it is
published; the publisher sends rows not yet stored by the bus, so a ``kill -9`` of the centre
neither loses a command nor issues a second copy (the same id is de-duplicated by the bus and
by the edge's inbox).
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from vpp.bus.envelope import Envelope
from vpp.bus.outbox import open_db, tx
from vpp.timefmt import iso

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY, town TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL,
    payload BLOB NOT NULL, issued_wall REAL NOT NULL, lease_until TEXT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0,
    ack_status TEXT, ack_reason TEXT, ack_detail TEXT, acked_wall REAL
);
CREATE INDEX IF NOT EXISTS commands_unpublished ON commands (published);
CREATE INDEX IF NOT EXISTS commands_town ON commands (town, kind, seq);
CREATE TABLE IF NOT EXISTS awards (id TEXT PRIMARY KEY, town TEXT, body TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS towns (town TEXT PRIMARY KEY, status TEXT NOT NULL, seen TEXT NOT NULL);
"""


class CentralState:
    def __init__(self, path: str | Path) -> None:
        self.db = open_db(path)
        self.db.executescript(_SCHEMA)

    # ------------------------------------------------------------------ commands
    def next_seq(self, town: str, kind: str) -> int:
        row = self.db.execute("SELECT MAX(seq) FROM commands WHERE town=? AND kind=?", (town, kind)).fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def add_command(self, env: Envelope, issued_wall: float) -> None:
        self.db.execute("INSERT INTO commands (id, town, kind, seq, payload, issued_wall, lease_until) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (env.id, env.town, env.kind, env.seq, env.encode(), issued_wall, iso(env.lease_until)))

    def unpublished(self, n: int = 64) -> list[tuple[str, bytes]]:
        return self.db.execute("SELECT id, payload FROM commands WHERE published=0 ORDER BY rowid LIMIT ?",
                               (n,)).fetchall()

    def mark_published(self, ids: list[str]) -> None:
        with tx(self.db):
            self.db.executemany("UPDATE commands SET published=1 WHERE id=?", [(i,) for i in ids])

    def record_ack(self, ref: str, status: str, reason: str, detail: dict[str, Any], wall: float) -> bool:
        """Store the first ack of command ``ref``; False if it had one (or is unknown)."""
        cur = self.db.execute("UPDATE commands SET ack_status=?, ack_reason=?, ack_detail=?, acked_wall=? "
                              "WHERE id=? AND (ack_status IS NULL OR ack_status='expired_unacked')",
                              (status, reason, json.dumps(detail), wall, ref))
        return cur.rowcount == 1

    def command(self, cmd_id: str) -> dict[str, Any] | None:
        cur = self.db.execute("SELECT id, town, kind, seq, issued_wall, lease_until, published, ack_status, "
                              "ack_reason, acked_wall, payload FROM commands WHERE id=?", (cmd_id,))
        row = cur.fetchone()
        if row is None:
            return None
        keys = [d[0] for d in cur.description]
        return dict(zip(keys, row))

    def unacked(self, town: str) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT id, kind, seq, lease_until, payload FROM commands "
                              "WHERE town=? AND ack_status IS NULL ORDER BY seq", (town,))
        return [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]

    def expire_unacked(self, town: str, now: datetime) -> int:
        """Mark the town's unacknowledged commands whose lease is over (they will never apply)."""
        cur = self.db.execute("UPDATE commands SET ack_status='expired_unacked' "
                              "WHERE town=? AND ack_status IS NULL AND lease_until <= ?", (town, iso(now)))
        return cur.rowcount

    def latest(self, town: str, kind: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT payload FROM commands WHERE town=? AND kind=? ORDER BY seq DESC LIMIT 1",
                              (town, kind)).fetchone()
        return json.loads(row[0]) if row else None

    def ack_counts(self) -> dict[str, int]:
        return {str(s): int(n) for s, n in self.db.execute(
            "SELECT COALESCE(ack_status, 'pending'), COUNT(*) FROM commands GROUP BY 1")}

    # ------------------------------------------------------------------ towns, awards
    def set_status(self, town: str, status: dict[str, Any], seen: datetime) -> bool:
        """Keep ``status`` as the town's last unless a newer one is stored already (a late or
        redelivered status never overwrites a newer one); returns whether it was kept."""
        cur = self.db.execute("INSERT INTO towns VALUES (?, ?, ?) ON CONFLICT(town) DO UPDATE "
                              "SET status=excluded.status, seen=excluded.seen WHERE excluded.seen >= towns.seen",
                              (town, json.dumps(status), iso(seen, ms=True)))
        return cur.rowcount == 1

    def towns(self) -> dict[str, dict[str, Any]]:
        return {t: {"status": json.loads(s), "seen": seen}
                for t, s, seen in self.db.execute("SELECT town, status, seen FROM towns ORDER BY town")}

    def add_award(self, award_id: str, town: str | None, body: dict[str, Any], at: datetime) -> bool:
        cur = self.db.execute("INSERT OR IGNORE INTO awards VALUES (?, ?, ?, ?)",
                              (award_id, town, json.dumps(body), iso(at)))
        return cur.rowcount == 1

    def awards(self) -> list[dict[str, Any]]:
        return [{"id": i, "town": t, "body": json.loads(b), "at": at}
                for i, t, b, at in self.db.execute("SELECT id, town, body, at FROM awards ORDER BY rowid")]

    def close(self) -> None:
        self.db.close()
