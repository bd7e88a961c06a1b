"""JEPX day-ahead spot price files (スポット市場 取引結果, the yearly ``spot_summary_YYYY.csv``).

Layout (cp932, one header line, one row per day and コマ)::

    受渡日,時刻コード,売り入札量(kWh),買い入札量(kWh),約定総量(kWh),システムプライス(円/kWh),
    エリアプライス北海道(円/kWh),エリアプライス東北(円/kWh),… 九州(円/kWh),,,…(averages, α, …)
    2026/06/01,1,…

Older files call the first column 年月日. Columns are found by name, so blank separator
columns and the later extra columns (averages, α values, avoidable cost, block volumes, FIP
reference prices) are ignored. 時刻コード 1–48 is the コマ starting at 00:00, 00:30, … 23:30
local time.

Contract: the whole file is checked before anything is returned (wrong encoding, a missing
date / コマ / area column, a duplicated or missing コマ, a day with other than 48 コマ, a
negative, non-numeric or implausible price → :class:`PriceFileError` naming the row and the
field); nothing partial is used.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from vpp.forecast.prices.common import (check_days, day_koma, decode_cp932, koma_start, parse_price,
                                        read_bytes)
from vpp.config import JEPX_AREAS
from vpp.forecast.prices.errors import PriceFileError

__all__ = ["AREAS", "DATE_HEADERS", "parse_jepx_spot", "read_jepx_spot"]

#: JEPX price areas in the file's column order.
AREAS = JEPX_AREAS
#: Date column: 受渡日 (current files) or 年月日 (older ones).
DATE_HEADERS = ("受渡日", "年月日")


def _find(header: list[str], pred, what: str, source: str) -> int:
    for i, h in enumerate(header):
        if pred(h.replace(" ", "").replace("　", "")):
            return i
    raise PriceFileError(f"no {what} column in the header (found: {', '.join(h for h in header if h)[:200]})",
                         source=source, row=1, field=what)


def parse_jepx_spot(data: bytes, area: str, tz: str = "Asia/Tokyo", source: str = "<jepx>") -> pd.DataFrame:
    """Spot prices of ``area`` [円/kWh] per コマ.

    Returns
    -------
    DataFrame indexed by UTC slot start (30 min), columns ``area`` (the area price) and
    ``system`` (the system price), sorted.
    """
    if area not in AREAS:
        raise PriceFileError(f"unknown JEPX area {area!r} (one of {', '.join(AREAS)})", source=source, field="area")
    text = decode_cp932(data, source)
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise PriceFileError("empty file", source=source)
    header = [h.strip() for h in rows[0]]
    i_day = _find(header, lambda h: h in DATE_HEADERS, "受渡日/年月日", source)
    i_koma = _find(header, lambda h: h.startswith("時刻コード"), "時刻コード", source)
    i_sys = _find(header, lambda h: h.startswith("システムプライス"), "システムプライス", source)
    i_area = _find(header, lambda h: h.startswith("エリアプライス") and area in h, f"エリアプライス{area}", source)
    need = max(i_day, i_koma, i_sys, i_area)
    seen: dict[tuple, int] = {}
    starts, area_p, sys_p = [], [], []
    for n, r in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in r):
            continue  # trailing blank lines
        if len(r) <= need:
            raise PriceFileError(f"{len(r)} fields, the header needs {need + 1}", source=source, row=n)
        d, k = day_koma(r, i_day, i_koma, header, seen, source, n)
        area_p.append(parse_price(r[i_area], source, n, header[i_area]))
        sys_p.append(parse_price(r[i_sys], source, n, header[i_sys]))
        starts.append(koma_start(d, k, tz))
    if not seen:
        raise PriceFileError("no data rows", source=source)
    check_days(seen, source)
    idx = pd.DatetimeIndex(starts, name="slot_start")
    return pd.DataFrame({"area": area_p, "system": sys_p}, index=idx).sort_index()


def read_jepx_spot(path: str | Path, area: str, tz: str = "Asia/Tokyo") -> pd.DataFrame:
    """:func:`parse_jepx_spot` of the file at ``path``."""
    return parse_jepx_spot(read_bytes(path), area, tz, source=str(path))
