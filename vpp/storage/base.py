"""The storage contract every backend implements, and the point record it stores.

Schema (both backends)
----------------------
* one measurement per device kind: ``pv``, ``battery``, ``ev_charger``, ``meter``;
* tags ``site`` and ``device``;
* fields: the snapshot's values in SI units (always floats) plus ``quality`` (string) and,
  when not empty, ``reason`` (string);
* timestamp: ``Snapshot.ts`` in integer nanoseconds since the epoch (read time, not write time).

A point is identified by (measurement, site, device, ts): writing it again replaces it, so a
replay after a crash never double-counts.

Rollups
-------
1-min and 15-min rollups for the dashboard are computed on read with ``GROUP BY time`` (InfluxQL)
or the same bucketing in SQL (:meth:`Store.rollup`); no continuous queries are installed.
Buckets are aligned to the UTC epoch, labelled by their start, and buckets without data are
omitted (InfluxQL ``fill(none)``).
"""
from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd

from drivers.protocols import DeviceKind, Quality, Snapshot

from .energy import slot_energy_from_counter, slot_energy_from_power
from vpp.slots import SLOT_S

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
MEASUREMENTS = tuple(k.value for k in DeviceKind)
AGGREGATES = ("mean", "last", "max", "min")
Agg = Literal["mean", "last", "max", "min"]
#: The string fields every point carries besides its numeric values.
RESERVED_FIELDS = frozenset({"quality", "reason"})
#: Lifetime counters used for slot energy, as (positive counter, negative counter) per kind;
#: the net sign matches the kind's power sign (meter + import, battery + discharge).
ENERGY_COUNTERS: dict[str, tuple[str, str | None]] = {
    "pv": ("energy_wh", None),
    "meter": ("import_energy_wh", "export_energy_wh"),
    "battery": ("discharge_energy_wh", "charge_energy_wh"),
}


class StorageError(RuntimeError):
    """The store cannot be used as configured (bad credentials, missing database, …).

    ``str()`` says why. Not retried: the operator must fix the configuration.
    """


class StoreUnavailable(StorageError):
    """The store is unreachable or failing transiently (refused, timeout, 5xx): retry later."""


@dataclass(slots=True)
class WriteResult:
    """Outcome of one batch write.

    ``written``: points accepted; ``rejected``: (point text, reason) for points the store
    refused as malformed (4xx) — the rest of the batch is still written.
    """

    written: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    dropped: int = 0  # refused points the store only counted (e.g. type conflicts)


def ts_ns(ts: datetime | int) -> int:
    """UTC timestamp as integer nanoseconds since the epoch (naive datetimes are taken as UTC)."""
    if isinstance(ts, int):
        return ts
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ((ts - EPOCH) // _US) * 1000


def from_ns(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1000)


_EVERY_RE = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def every_seconds(every: str | timedelta | int | float) -> int:
    """Bucket width in whole seconds from ``'30s'``, ``'1m'``, ``'15m'``, ``'1h'``, ``'1d'`` or a timedelta.

    Allowed range 1 s … 1 d.
    """
    if isinstance(every, timedelta):
        s = every.total_seconds()
    elif isinstance(every, (int, float)):
        s = float(every)
    else:
        m = _EVERY_RE.match(every.strip())
        if not m:
            raise ValueError(f"bad bucket width {every!r}: use e.g. '1s', '1m', '15m', '1h', '1d'")
        s = int(m.group(1)) * _UNIT_S[m.group(2)]
    if s != int(s) or not 1 <= s <= 86400:
        raise ValueError(f"bucket width must be whole seconds in 1 s … 1 d, got {every!r}")
    return int(s)


def snapshot_from_row(kind: str, device: str, ns: int, row: dict[str, Any]) -> Snapshot:
    """Rebuild a :class:`Snapshot` from a stored point's fields."""
    values = {k: float(v) for k, v in row.items()
              if k not in RESERVED_FIELDS and v is not None and not isinstance(v, str)}
    q = row.get("quality") or "good"
    try:
        quality = Quality(q)
    except ValueError:
        quality = Quality.BAD
    return Snapshot(device=device, kind=DeviceKind(kind), ts=from_ns(ns), values=values,
                    quality=quality, reason=row.get("reason") or "")


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


class Store(abc.ABC):
    """Time-series store for device snapshots. All methods are blocking (run writes in a thread).

    Times are UTC; ``start`` is inclusive, ``end`` exclusive.
    """

    site: str

    # -- lifecycle -------------------------------------------------------------------------
    @abc.abstractmethod
    def open(self) -> None:
        """Connect and verify the store; raise :class:`StorageError` with the reason if unusable."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "Store":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------------------
    @abc.abstractmethod
    def prepare(self, snapshots: Sequence[Snapshot]) -> Any:
        """Encode a batch for :meth:`write_prepared` (CPU only, no I/O)."""

    @abc.abstractmethod
    def write_prepared(self, prepared: Any) -> WriteResult:
        """Write an encoded batch.

        Raises :class:`StoreUnavailable` when the store is down or failing transiently (the
        whole batch was not written), :class:`StorageError` for configuration faults
        (authentication, missing database). Malformed points are reported in the result.
        """

    def write(self, snapshots: Sequence[Snapshot]) -> WriteResult:
        """Write snapshots (idempotent per measurement, tags, ts)."""
        return self.write_prepared(self.prepare(snapshots))

    # -- reads -----------------------------------------------------------------------------
    @abc.abstractmethod
    def latest(self, device: str | None = None) -> dict[str, Snapshot]:
        """Most recent stored snapshot per device id (only ``device`` when given)."""

    @abc.abstractmethod
    def _aggregate(self, kind: str | None, device: str | None, fields: Sequence[str],
                   start_ns: int, end_ns: int, every_s: int, agg: str) -> pd.DataFrame: ...

    @abc.abstractmethod
    def raw(self, device: str, fields: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        """Unaggregated points of one device: UTC DatetimeIndex, one column per field (NaN if absent)."""

    @abc.abstractmethod
    def devices(self) -> dict[str, str]:
        """Device id → kind for every device with stored points on this site."""

    @abc.abstractmethod
    def count(self, kind: str | None = None, device: str | None = None) -> int:
        """Number of stored points (for audits and tests)."""

    def query(self, *, kind: str | None = None, device: str | None = None, fields: Sequence[str],
              start: datetime, end: datetime, every: str | timedelta = "1m",
              agg: Agg = "mean") -> pd.DataFrame:
        """Aggregate ``fields`` into time buckets.

        Select by ``device`` or by ``kind`` (then all devices of that kind are pooled in each
        bucket: ``mean`` is the mean over all their points, not a sum).

        Returns
        -------
        DataFrame with a UTC ``DatetimeIndex`` (bucket starts, aligned to the epoch, empty
        buckets omitted) and one float column per field.
        """
        if (kind is None) == (device is None):
            raise ValueError("give exactly one of kind= or device=")
        if kind is not None and kind not in MEASUREMENTS:
            raise ValueError(f"unknown kind {kind!r}")
        if agg not in AGGREGATES:
            raise ValueError(f"agg must be one of {AGGREGATES}, got {agg!r}")
        fields = list(fields)
        bad = [f for f in fields if f in RESERVED_FIELDS or not f.replace("_", "").isalnum()]
        if not fields or bad:
            raise ValueError(f"bad field list {fields!r}")
        df = self._aggregate(kind, device, fields, ts_ns(_utc(start)), ts_ns(_utc(end)),
                             every_seconds(every), agg)
        return df.reindex(columns=fields).astype(float)

    def rollup(self, *, kind: str | None = None, device: str | None = None, fields: Sequence[str],
               start: datetime, end: datetime, every: Literal["1m", "15m"] = "1m") -> pd.DataFrame:
        """Dashboard rollup: 1-min or 15-min means (computed on read, see module docs)."""
        if every not in ("1m", "15m"):
            raise ValueError("rollups are '1m' or '15m'")
        return self.query(kind=kind, device=device, fields=fields, start=start, end=end,
                          every=every, agg="mean")

    def energy_slots(self, device: str | None = None, *, start: datetime, end: datetime,
                     slot_s: int = SLOT_S, max_gap_s: float = 300.0) -> pd.DataFrame:
        """Energy per slot [kWh] per device (columns = device ids, index = UTC slot starts).

        Uses the difference of lifetime energy counters (linearly interpolated at slot
        boundaries) where a device stores them, else trapezoidal integration of ``power_w``
        (gaps longer than ``max_gap_s`` [s] are not integrated). Signs follow the power
        convention: meter > 0 import, battery > 0 discharge. ``device=None``: every device
        of the site.
        """
        start, end = _utc(start), _utc(end)
        if slot_s <= 0 or (ts_ns(end) - ts_ns(start)) % (slot_s * 10**9):
            raise ValueError("end - start must be a whole number of slots")
        kinds = self.devices()
        ids = [device] if device is not None else sorted(kinds)
        s_ns, e_ns = ts_ns(start), ts_ns(end)
        edges = np.arange(s_ns, e_ns + 1, slot_s * 10**9, dtype=np.int64)
        margin = timedelta(seconds=max(max_gap_s, slot_s))
        out: dict[str, np.ndarray] = {}
        for dev in ids:
            kind = kinds.get(dev)
            pos, neg = ENERGY_COUNTERS.get(kind or "", (None, None))
            cols = ["power_w"] + [c for c in (pos, neg) if c]
            raw = self.raw(dev, cols, start - margin, end + margin)
            t = raw.index.as_unit("ns").asi8 if len(raw) else np.zeros(0, np.int64)
            wh = None
            if pos and pos in raw and raw[pos].notna().sum() >= 2:
                ok = raw[pos].notna().to_numpy()
                wh = slot_energy_from_counter(t[ok], raw[pos].to_numpy(float)[ok], edges)
                if neg and neg in raw and raw[neg].notna().sum() >= 2:
                    okn = raw[neg].notna().to_numpy()
                    wh = wh - slot_energy_from_counter(t[okn], raw[neg].to_numpy(float)[okn], edges)
            if wh is None:
                p = raw["power_w"] if "power_w" in raw else pd.Series(dtype=float)
                ok = p.notna().to_numpy()
                wh = slot_energy_from_power(t[ok], p.to_numpy(float)[ok], edges, max_gap_s)
            out[dev] = wh / 1000.0
        idx = pd.DatetimeIndex(edges[:-1].astype("datetime64[ns]")).tz_localize("UTC")
        return pd.DataFrame(out, index=idx, columns=ids, dtype=float)


