"""Embedded backend: SQLite (standard library) in WAL mode, the default for ``make demo``.

One row per point: key (site, device, measurement, ts) with ``INSERT OR REPLACE``, the numeric
fields as a JSON object. Unlike InfluxDB, a rewrite replaces the whole point rather than
merging fields; snapshots are written whole, so the result is the same for replays.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Sequence

import pandas as pd

from drivers.protocols import Snapshot
from vpp.config import EmbeddedStorage

from .base import Store, StorageError, WriteResult, snapshot_from_row, ts_ns

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    site TEXT NOT NULL, device TEXT NOT NULL, measurement TEXT NOT NULL, ts INTEGER NOT NULL,
    quality TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', fields TEXT NOT NULL,
    PRIMARY KEY (site, device, measurement, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_kind_ts ON points (site, measurement, ts);
CREATE TABLE IF NOT EXISTS devices (
    site TEXT NOT NULL, device TEXT NOT NULL, measurement TEXT NOT NULL,
    PRIMARY KEY (site, device)
) WITHOUT ROWID;
"""


class EmbeddedStore(Store):
    """Store snapshots in one SQLite file (schema: see :mod:`vpp.storage.base`)."""

    def __init__(self, cfg: EmbeddedStorage, *, site: str):
        self.cfg = cfg
        self.site = site
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._known: set[tuple[str, str]] = set()

    def open(self) -> None:
        path = Path(self.cfg.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise StorageError(f"cannot open embedded store {path}: {e}") from None
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            with self._lock:
                self._conn.close()
                self._conn = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("embedded store is not open")
        return self._conn

    def prepare(self, snapshots: Sequence[Snapshot]) -> list[tuple]:
        site, dumps = self.site, json.dumps
        rows = []
        for s in snapshots:
            vals = {k: float(v) for k, v in s.values.items() if isinstance(v, float) and v - v == 0.0}  # numpy.float64 too
            rows.append((site, s.device, s.kind.value, ts_ns(s.ts), s.quality.value, s.reason, dumps(vals)))
        return rows

    def write_prepared(self, rows: list[tuple]) -> WriteResult:
        if not rows:
            return WriteResult()
        new = {(r[1], r[2]) for r in rows} - self._known
        with self._lock:
            db = self._db()
            try:
                db.execute("BEGIN")
                db.executemany("INSERT OR REPLACE INTO points VALUES (?,?,?,?,?,?,?)", rows)
                if new:
                    db.executemany("INSERT OR REPLACE INTO devices VALUES (?,?,?)",
                                   [(self.site, d, m) for d, m in new])
                db.execute("COMMIT")
            except sqlite3.Error as e:
                db.execute("ROLLBACK")
                raise StorageError(f"embedded store write failed: {e}") from None
        self._known |= new
        return WriteResult(written=len(rows))

    def _rows(self, sql: str, args: Sequence) -> list[tuple]:
        with self._lock:
            return self._db().execute(sql, args).fetchall()

    def devices(self) -> dict[str, str]:
        return dict(self._rows("SELECT device, measurement FROM devices WHERE site=? ORDER BY device",
                               (self.site,)))

    def latest(self, device: str | None = None) -> dict[str, Snapshot]:
        devs = self.devices()
        if device is not None:
            devs = {device: devs[device]} if device in devs else {}
        out = {}
        for dev, kind in devs.items():
            r = self._rows("SELECT ts, quality, reason, fields FROM points WHERE site=? AND device=? "
                           "AND measurement=? ORDER BY ts DESC LIMIT 1", (self.site, dev, kind))
            if r:
                ns, q, reason, f = r[0]
                out[dev] = snapshot_from_row(kind, dev, ns, {**json.loads(f), "quality": q, "reason": reason})
        return out

    def _select(self, kind, device, fields, start_ns, end_ns) -> pd.DataFrame:
        cols = ", ".join(f"json_extract(fields, '$.{f}')" for f in fields)
        sql = f"SELECT ts, {cols} FROM points WHERE site=? AND ts>=? AND ts<?"
        args: list = [self.site, start_ns, end_ns]
        if kind is not None:
            sql += " AND measurement=?"
            args.append(kind)
        if device is not None:
            sql += " AND device=?"
            args.append(device)
        df = pd.DataFrame(self._rows(sql + " ORDER BY ts", args), columns=["ts", *fields])
        df[list(fields)] = df[list(fields)].astype(float)
        return df

    def _aggregate(self, kind, device, fields, start_ns, end_ns, every_s, agg) -> pd.DataFrame:
        df = self._select(kind, device, fields, start_ns, end_ns)
        width = every_s * 1_000_000_000
        bucket = (df.pop("ts") // width) * width
        out = df.groupby(bucket.to_numpy()).agg(agg).dropna(how="all")
        out.index = pd.DatetimeIndex(pd.to_datetime(out.index.astype("int64"), unit="ns", utc=True), name="time")
        return out

    def raw(self, device: str, fields: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        df = self._select(None, device, list(fields), ts_ns(start), ts_ns(end))
        df = df.dropna(how="all", subset=list(fields))
        df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("ts").astype("int64"), unit="ns", utc=True), name="time")
        return df

    def count(self, kind: str | None = None, device: str | None = None) -> int:
        sql, args = "SELECT count(*) FROM points WHERE site=?", [self.site]
        if kind is not None:
            sql += " AND measurement=?"
            args.append(kind)
        if device is not None:
            sql += " AND device=?"
            args.append(device)
        return self._rows(sql, args)[0][0]
