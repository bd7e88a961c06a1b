"""Smart-meter 30-minute readings as the metering of low-voltage (ECHONET Lite) homes.

A Japanese low-voltage smart meter latches its cumulative import and export counts at every
:00 and :30 (ECHONET 0x0288 EA/EB: meter-local time + count; the driver
:meth:`drivers.echonet.device.EchonetMeter.half_hour_readings` already applies the D3
coefficient and the E1 unit, giving Wh). Those fixed-time readings — not power integrated by
the poller — are the metering of record for ERAB baselines and settlement of such a home:

* :class:`HalfHourLog` keeps the distinct latched readings per meter as they are polled;
* :func:`slot_energy` differences consecutive readings into the energy of each 30-min slot
  ``[t − 30 min, t)`` (UTC) with a flag: ``ok``, ``missing`` (no previous reading, a
  "no data" count, or a gap of more than one slot) or ``backwards`` (a count below the one
  before: a meter swap, a wrap or a bad read). Flagged slots carry NaN energy: never used;
* :func:`half_hour_import_w` — mean net import [W] per slot (import − export), the series
  :func:`vpp.market.metering.metered_import_w` returns for a meter that speaks ECHONET Lite.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vpp.slots import SLOT_S

FLAGS = ("ok", "missing", "backwards")


@dataclass
class HalfHourLog:
    """Latched readings per meter id: ``{meter: {local latch time: (import Wh|None, export Wh|None)}}``."""

    readings: dict[str, dict[datetime, tuple[float | None, float | None]]] = field(default_factory=dict)

    def record(self, meter_id: str, half_hour: dict[str, tuple[datetime, float | None]]) -> bool:
        """Record one poll's EA/EB (``EchonetMeter.half_hour_readings()``); True when new.

        EA and EB latched at different times (a poll between the two latches) are kept apart
        rather than paired wrongly."""
        imp, exp = half_hour.get("import"), half_hour.get("export")
        if imp is None and exp is None:
            return False
        log = self.readings.setdefault(meter_id, {})
        new = False
        for pos, r in ((0, imp), (1, exp)):
            if r is None:
                continue
            at, wh = r
            old = log.get(at, (None, None))
            if at not in log or old[pos] is None and wh is not None:
                new = True
                log[at] = (wh, old[1]) if pos == 0 else (old[0], wh)
        return new

    def series(self, meter_id: str) -> list[tuple[datetime, float | None, float | None]]:
        """``[(local latch time, import Wh, export Wh)]`` in time order."""
        return sorted((t, i, e) for t, (i, e) in self.readings.get(meter_id, {}).items())


def slot_energy(readings: Iterable[tuple[datetime, float | None, float | None]], tz: str) -> pd.DataFrame:
    """Energy per 30-min slot from fixed-time cumulative readings.

    ``readings``: ``(meter-local naive latch time, cumulative import Wh | None, cumulative
    export Wh | None)``. Returns a frame indexed by slot start (UTC) with ``import_wh``,
    ``export_wh`` [Wh] and ``flag`` (one of :data:`FLAGS`); a flagged slot's energies are NaN.
    """
    zone = ZoneInfo(tz)
    rows: dict[pd.Timestamp, tuple[float, float, str]] = {}
    prev: tuple[datetime, float | None, float | None] | None = None
    step = timedelta(seconds=SLOT_S)
    for at, imp, exp in sorted(readings, key=lambda r: r[0]):
        local = at.replace(tzinfo=zone) if at.tzinfo is None else at.astimezone(zone)
        start = pd.Timestamp(local - step).tz_convert("UTC")
        if prev is None or local - prev[0] != step or None in (imp, exp, prev[1], prev[2]):
            rows[start] = (np.nan, np.nan, "missing")
        elif imp < prev[1] or exp < prev[2]:
            rows[start] = (np.nan, np.nan, "backwards")
        else:
            rows[start] = (imp - prev[1], exp - prev[2], "ok")
        prev = (local, imp, exp)
    if not rows:
        return pd.DataFrame({"import_wh": [], "export_wh": [], "flag": []},
                            index=pd.DatetimeIndex([], tz="UTC"))
    idx = pd.DatetimeIndex(list(rows), tz="UTC")
    imp_, exp_, flag = zip(*rows.values())
    return pd.DataFrame({"import_wh": imp_, "export_wh": exp_, "flag": flag}, index=idx).sort_index()


def half_hour_import_w(log: HalfHourLog, meter_id: str, tz: str, start: datetime, end: datetime) -> pd.Series:
    """Mean net import [W] per 30-min slot in ``[start, end)`` from ``meter_id``'s fixed-time
    readings (NaN where unread or flagged)."""
    idx = pd.date_range(pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC"),
                        freq=f"{SLOT_S}s", inclusive="left")
    e = slot_energy(log.series(meter_id), tz)
    net = (e["import_wh"] - e["export_wh"]) * 3600.0 / SLOT_S
    return net.reindex(idx).astype(float)
