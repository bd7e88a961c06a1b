"""Helpers shared by the storage tests (snapshot builder, config factories)."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

from drivers.protocols import DeviceKind, Quality, Snapshot
from vpp.config import InfluxStorage

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
_n = itertools.count()


def snap(device: str, kind: str, t: datetime | float, quality: Quality = Quality.GOOD, reason: str = "",
         **values) -> Snapshot:
    ts = t if isinstance(t, datetime) else T0 + timedelta(seconds=t)
    return Snapshot(device, DeviceKind(kind), ts, values, quality, reason)


def influx_cfg(url: str, **kw) -> InfluxStorage:
    return InfluxStorage(backend="influxdb", url=url, **{"database": f"t{next(_n)}", "timeout_s": 3.0, **kw})
