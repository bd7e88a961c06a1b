"""InfluxDB backend over the v1-compatible HTTP API (``/write`` line protocol, ``/query`` InfluxQL).

Works with InfluxDB 1.x (user/password as HTTP Basic), and the v1-compatibility endpoints of
2.x / 3.x (``Authorization: Token …``). Escaping comes from influxdb-client's line-protocol
helpers; series prefixes and field keys are escaped once and cached, values are formatted
with ``repr(float)``. Building an influxdb-client ``Point`` per snapshot and calling
``to_line_protocol()`` measured ~45,000 points/s on the 2-core dev box, below the 50,000
points/s goal on its own; the flat cached encoder does ~330,000 points/s (see ``bench/ingest.py``).
"""
from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any, Sequence

import httpx
import pandas as pd
from influxdb_client.client.write.point import (_ESCAPE_MEASUREMENT, _escape_key, _escape_string,
                                                 _escape_tag_value)

from drivers.protocols import Quality, Snapshot
from vpp.config import InfluxStorage

from .base import (_US, EPOCH, MEASUREMENTS, Store, StorageError, StoreUnavailable, WriteResult,
                   snapshot_from_row, ts_ns)

log = logging.getLogger(__name__)

_PRECISION_DIV = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_UNPARSABLE = re.compile(r"unable to parse '(.*?)': ([^\n]*?)(?=\nunable to parse '| dropped=\d+$|$)", re.S)
_DROPPED = re.compile(r"dropped=(\d+)")


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Batch:
    __slots__ = ("lines", "body")

    def __init__(self, lines: list[str]):
        self.lines = lines
        self.body = "\n".join(lines).encode()


class InfluxStore(Store):
    """Store snapshots in InfluxDB (schema: see :mod:`vpp.storage.base`)."""

    def __init__(self, cfg: InfluxStorage, *, site: str):
        self.cfg = cfg
        self.site = site
        self._div = _PRECISION_DIV[cfg.precision]
        self._prefix: dict[tuple[str, str], str] = {}
        self._keys: dict[str, str] = {}
        self._site_tag = _escape_tag_value(site)
        self._client: httpx.Client | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def _http(self) -> httpx.Client:
        if self._client is None:
            headers, auth = {}, None
            if self.cfg.token:
                headers["Authorization"] = f"Token {self.cfg.token}"
            elif self.cfg.username is not None:
                auth = httpx.BasicAuth(self.cfg.username, self.cfg.password or "")
            self._client = httpx.Client(base_url=self.cfg.url.rstrip("/"), headers=headers, auth=auth,
                                        timeout=self.cfg.timeout_s)
        return self._client

    def open(self) -> None:
        """Check reachability, credentials and the database (created if configured)."""
        c, db = self._http(), self.cfg.database
        where = f"{self.cfg.url} database {db!r}"
        try:
            c.get("/ping")
        except httpx.TransportError as e:
            raise StoreUnavailable(f"InfluxDB at {self.cfg.url} unreachable: {e!r}") from None
        res = self._influxql(f"SHOW RETENTION POLICIES ON {_ident(db)}", what=where, db=None, check=False)
        err = res.get("error")
        if err and "database not found" in err:
            if not self.cfg.create_database:
                raise StorageError(f"{where}: database does not exist and storage.create_database is false")
            cr = self._influxql(f"CREATE DATABASE {_ident(db)}", what=where, db=None, post=True, check=False)
            if cr.get("error"):
                raise StorageError(f"{where}: cannot create database: {cr['error']}")
            log.info("created InfluxDB database %r at %s", db, self.cfg.url)
            res = self._influxql(f"SHOW RETENTION POLICIES ON {_ident(db)}", what=where, db=None)
        elif err:
            raise StorageError(f"{where}: {err}")
        rp = self.cfg.retention_policy
        if rp:
            names = [v[0] for s in res.get("series", []) for v in s.get("values", [])]
            if rp not in names:
                raise StorageError(f"{where}: retention policy {rp!r} does not exist (have {names})")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- writes ----------------------------------------------------------------------------
    def _series(self, kind: str, device: str) -> str:
        # tags sorted by key (device < site), as InfluxDB stores them
        return f"{kind.translate(_ESCAPE_MEASUREMENT)},device={_escape_tag_value(device)},site={self._site_tag} "

    def _key(self, name: str) -> str:
        k = self._keys.get(name)
        if k is None:
            k = self._keys[name] = _escape_key(name)
        return k

    def encode(self, s: Snapshot) -> str:
        """One line of line protocol for a (sanitised) snapshot; non-finite values are skipped."""
        return self.encode_many([s])[0]

    def encode_many(self, snapshots: Sequence[Snapshot]) -> list[str]:
        """Line protocol for a batch (the hot path of ingestion: kept flat on purpose)."""
        keys, prefix, div = self._keys, self._prefix, self._div
        out = []
        for s in snapshots:
            p = prefix.get((s.kind, s.device))
            if p is None:
                p = prefix[(s.kind, s.device)] = self._series(str(getattr(s.kind, "value", s.kind)), s.device)
            parts = []
            for k, v in s.values.items():
                if type(v) is float and v - v == 0.0:
                    kk = keys.get(k)
                    if kk is None:
                        kk = self._key(k)
                    parts.append(f"{kk}={v!r}")
            q = s.quality
            parts.append(f'quality="{q.value}"' if type(q) is Quality else f'quality="{_escape_string(q)}"')
            if s.reason:
                parts.append(f'reason="{_escape_string(s.reason)}"')
            t = s.ts
            ns = ((t - EPOCH) // _US) * 1000 if type(t) is datetime and t.tzinfo is not None else ts_ns(t)
            out.append(f"{p}{','.join(parts)} {ns // div}")
        return out

    def prepare(self, snapshots: Sequence[Snapshot]) -> _Batch:
        return _Batch(self.encode_many(snapshots))

    def write_lines(self, lines: list[str]) -> WriteResult:
        """Write pre-encoded line protocol (see :meth:`write_prepared`)."""
        return self.write_prepared(_Batch(lines))

    def write_prepared(self, batch: _Batch) -> WriteResult:
        if not batch.lines:
            return WriteResult()
        params = {"db": self.cfg.database, "precision": self.cfg.precision}
        if self.cfg.retention_policy:
            params["rp"] = self.cfg.retention_policy
        try:
            r = self._http().post("/write", params=params, content=batch.body)
        except httpx.TransportError as e:
            raise StoreUnavailable(f"write to {self.cfg.url} failed: {e!r}") from None
        n = len(batch.lines)
        if r.status_code == 204:
            return WriteResult(written=n)
        msg = _error_text(r)
        if r.status_code in (401, 403):
            raise self._auth_error(r)
        if r.status_code == 404:
            raise StorageError(f"InfluxDB at {self.cfg.url}: {msg}")
        if r.status_code == 413 and n > 1:
            return self._split(batch)
        if r.status_code == 400 and "partial write" in msg:
            rejected = [(m.group(1), m.group(2).strip()) for m in _UNPARSABLE.finditer(msg)]
            d = _DROPPED.search(msg)
            dropped = int(d.group(1)) if d else 0
            if dropped:
                log.error("InfluxDB dropped %d of %d points: %s", dropped, n, msg)
            for line, why in rejected:
                log.error("InfluxDB rejected point (%s): %s", why, line)
            return WriteResult(written=max(0, n - len(rejected) - dropped), rejected=rejected, dropped=dropped)
        if 400 <= r.status_code < 500 and r.status_code != 429:
            if n == 1:
                log.error("InfluxDB rejected point (%s): %s", msg, batch.lines[0])
                return WriteResult(rejected=[(batch.lines[0], msg)])
            return self._split(batch)  # isolate the malformed lines, write the rest
        raise StoreUnavailable(f"InfluxDB write returned {r.status_code}: {msg}")

    def _split(self, batch: _Batch) -> WriteResult:
        mid = len(batch.lines) // 2
        a = self.write_prepared(_Batch(batch.lines[:mid]))
        b = self.write_prepared(_Batch(batch.lines[mid:]))
        return WriteResult(a.written + b.written, a.rejected + b.rejected, a.dropped + b.dropped)

    # -- reads -----------------------------------------------------------------------------
    def _influxql(self, q: str, *, what: str = "", db: str | None | bool = True, post: bool = False,
                  check: bool = True) -> dict[str, Any]:
        params = {"q": q, "epoch": "ns"}
        if db is True:
            params["db"] = self.cfg.database
            if self.cfg.retention_policy:
                params["rp"] = self.cfg.retention_policy
        try:
            c = self._http()
            r = c.post("/query", params=params) if post else c.get("/query", params=params)
        except httpx.TransportError as e:
            raise StoreUnavailable(f"query to {self.cfg.url} failed: {e!r}") from None
        if r.status_code in (401, 403):
            raise self._auth_error(r)
        if r.status_code >= 500:
            raise StoreUnavailable(f"InfluxDB query returned {r.status_code}: {_error_text(r)}")
        body = r.json() if r.content else {}
        if "error" in body:
            res = {"error": body["error"]}
        else:
            res = (body.get("results") or [{}])[0]
        if check and res.get("error"):
            raise StorageError(f"InfluxQL error{(' for ' + what) if what else ''}: {res['error']} (query: {q})")
        return res

    def _auth_error(self, r: httpx.Response) -> StorageError:
        who = f" (user {self.cfg.username!r})" if self.cfg.username else " (token)" if self.cfg.token else ""
        if r.status_code == 403:
            return StorageError(f"InfluxDB at {self.cfg.url}: not authorized{who} for database "
                                f"{self.cfg.database!r}; grant privileges or create it as an admin: "
                                f"{_error_text(r)}")
        return StorageError(f"InfluxDB at {self.cfg.url} refused credentials{who}: {_error_text(r)}")

    def _from(self, kind: str | None) -> str:
        kinds = [kind] if kind else list(MEASUREMENTS)
        if self.cfg.retention_policy:
            pre = f"{_ident(self.cfg.database)}.{_ident(self.cfg.retention_policy)}."
            return ",".join(pre + _ident(k) for k in kinds)
        return ",".join(_ident(k) for k in kinds)

    def _where(self, device: str | None, start_ns: int | None = None, end_ns: int | None = None) -> str:
        w = f'"site" = {_lit(self.site)}'
        if device is not None:
            w += f' AND "device" = {_lit(device)}'
        if start_ns is not None:
            w += f" AND time >= {start_ns} AND time < {end_ns}"
        return w

    def latest(self, device: str | None = None) -> dict[str, Snapshot]:
        res = self._influxql(f'SELECT * FROM {self._from(None)} WHERE {self._where(device)} '
                             f'GROUP BY "device" ORDER BY time DESC LIMIT 1')
        out: dict[str, Snapshot] = {}
        for s in res.get("series", []):
            dev = s["tags"]["device"]
            cols = s["columns"]
            row = dict(zip(cols, s["values"][0]))
            ns = row.pop("time")
            row.pop("site", None)
            snap = snapshot_from_row(s["name"], dev, ns, row)
            if dev not in out or snap.ts > out[dev].ts:
                out[dev] = snap
        return out

    def _frame(self, res: dict[str, Any], fields: Sequence[str]) -> pd.DataFrame:
        frames = []
        for s in res.get("series", []):
            df = pd.DataFrame(s["values"], columns=s["columns"])
            frames.append(df)
        if not frames:
            return pd.DataFrame(columns=list(fields), index=pd.DatetimeIndex([], tz="UTC"), dtype=float)
        df = pd.concat(frames).sort_values("time")
        idx = pd.to_datetime(df.pop("time").astype("int64"), unit="ns", utc=True)
        df.index = pd.DatetimeIndex(idx)
        df.index.name = "time"
        return df.reindex(columns=list(fields)).astype(float)

    def _aggregate(self, kind, device, fields, start_ns, end_ns, every_s, agg) -> pd.DataFrame:
        sel = ", ".join(f"{agg}({_ident(f)}) AS {_ident(f)}" for f in fields)
        q = (f"SELECT {sel} FROM {self._from(kind)} WHERE {self._where(device, start_ns, end_ns)} "
             f"GROUP BY time({every_s}s) fill(none)")
        return self._frame(self._influxql(q), fields)

    def raw(self, device: str, fields: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        sel = ", ".join(_ident(f) for f in fields)
        q = f"SELECT {sel} FROM {self._from(None)} WHERE {self._where(device, ts_ns(start), ts_ns(end))}"
        return self._frame(self._influxql(q), fields)

    def devices(self) -> dict[str, str]:
        res = self._influxql(f'SHOW TAG VALUES FROM {self._from(None)} WITH KEY = "device" '
                             f'WHERE "site" = {_lit(self.site)}')
        return {v[1]: s["name"] for s in res.get("series", []) for v in s["values"]}

    def count(self, kind: str | None = None, device: str | None = None) -> int:
        res = self._influxql(f'SELECT count("quality") FROM {self._from(kind)} WHERE {self._where(device)}')
        return sum(int(s["values"][0][1]) for s in res.get("series", []))


def _error_text(r: httpx.Response) -> str:
    try:
        return str(r.json().get("error", r.text)).strip()
    except ValueError:
        return r.text.strip() or r.reason_phrase
