"""Durable outbox: what a sender has produced but the bus has not yet stored.

Every message is first committed to a local SQLite file (WAL) with an id that is unique for
ever (``<town>:<instance>:<seq>``, the instance id is created with the file), then published
in order by :meth:`Outbox.run`; a row is marked sent only after JetStream's ack. While the bus
is away messages pile up here and are replayed in order when it returns; after a ``kill -9``
of the sender the unsent rows are sent on restart with the same ids, so a message the server
had already stored is dropped by its de-duplication (``Nats-Msg-Id``) and never doubled.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from vpp.bus.client import Bus, BusUnavailable
from vpp.bus.envelope import Envelope
from vpp.bus.subjects import check_town, subject

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (sent, seq);
"""


def open_db(path: str | Path) -> sqlite3.Connection:
    """A SQLite connection in WAL mode (a committed row survives a crash of the process)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


@contextlib.contextmanager
def tx(db: sqlite3.Connection):
    """One transaction on an autocommit connection; nested uses join the outer one."""
    if db.in_transaction:
        yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class Outbox:
    """The outbox of one sender (an edge agent's town) in the SQLite file ``path``."""

    def __init__(self, path: str | Path, town: str, clock: Callable[[], datetime], *, chunk: int = 32) -> None:
        self.town, self.clock, self.chunk = check_town(town), clock, chunk
        self.db = open_db(path)
        self.db.executescript(_SCHEMA)
        row = self.db.execute("SELECT value FROM meta WHERE key='instance'").fetchone()
        if row is None:
            self.instance = uuid.uuid4().hex[:12]
            self.db.execute("INSERT INTO meta VALUES ('instance', ?)", (self.instance,))
        else:
            self.instance = row[0]
        self._wake = asyncio.Event()
        self.published = 0  #: messages the bus acknowledged (this process)
        self.deduplicated = 0  #: re-sent messages the bus already had

    def append(self, kind: str, body: dict[str, Any]) -> Envelope:
        """Commit one message (it will be sent, in order, even across a crash) and return it."""
        with tx(self.db):
            cur = self.db.execute("INSERT INTO outbox (id, kind, payload) VALUES ('', ?, x'')", (kind,))
            seq = int(cur.lastrowid)
            env = Envelope(f"{self.town}:{self.instance}:{seq}", self.town, kind, seq, self.clock(), body)
            self.db.execute("UPDATE outbox SET id=?, payload=? WHERE seq=?", (env.id, env.encode(), seq))
        self._wake.set()
        return env

    def pending(self) -> int:
        """Messages not yet stored by the bus."""
        return int(self.db.execute("SELECT COUNT(*) FROM outbox WHERE sent=0").fetchone()[0])

    def _unsent(self, n: int) -> list[tuple[int, str, str, bytes]]:
        return self.db.execute("SELECT seq, id, kind, payload FROM outbox WHERE sent=0 ORDER BY seq LIMIT ?",
                               (n,)).fetchall()

    async def flush_once(self, bus: Bus) -> int:
        """Publish up to one chunk of unsent messages in order (pipelined on one connection);
        returns how many the bus acknowledged. From the first failure on, the chunk is retried
        in order later; a message after it that the server did store is then re-sent and
        dropped as a duplicate, so the stream can hold it ahead of the failed one — the
        consumers do not depend on arrival order (telemetry is keyed by timestamp, acks by
        command, a status only replaces an older one)."""
        rows = self._unsent(self.chunk)
        if not rows:
            return 0
        results = await asyncio.gather(*(bus.publish_raw(subject(self.town, kind), payload, mid)
                                         for _, mid, kind, payload in rows), return_exceptions=True)
        done: list[int] = []
        for (seq, *_), res in zip(rows, results):
            if isinstance(res, BaseException):
                break
            done.append(seq)
            self.deduplicated += int(bool(res))
        if done:
            with tx(self.db):
                self.db.executemany("UPDATE outbox SET sent=1 WHERE seq=?", [(s,) for s in done])
            self.published += len(done)
        if len(done) < len(rows):
            err = next(r for r in results if isinstance(r, BaseException))
            raise BusUnavailable(str(err))
        return len(done)

    async def run(self, bus: Bus, stop: asyncio.Event, *, retry_s: float = 0.2) -> None:
        """Send everything unsent, in order, until ``stop`` (retrying while the bus is away)."""
        while not stop.is_set():
            try:
                n = await self.flush_once(bus)
            except BusUnavailable as e:
                log.debug("outbox %s: %s", self.town, e)
                await asyncio.sleep(retry_s)
                continue
            if n == 0:
                self._wake.clear()
                if self.pending() == 0:
                    waiter = asyncio.ensure_future(self._wake.wait())
                    stopper = asyncio.ensure_future(stop.wait())
                    await asyncio.wait({waiter, stopper}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    stopper.cancel()

    def prune(self, keep: int = 1000) -> None:
        """Forget sent rows older than the newest ``keep`` rows (ids are never reused:
        AUTOINCREMENT), so the file stays small on a box that runs for years."""
        with tx(self.db):
            self.db.execute("DELETE FROM outbox WHERE sent=1 AND seq < (SELECT MAX(seq) FROM outbox) - ?", (keep,))

    def close(self) -> None:
        self.db.close()
