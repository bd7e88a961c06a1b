"""Imbalance price files (インバランス料金単価, one file per month, cp932).

Layout: every line starts with its record type::

    H,インバランス料金単価,2026年06月分,…              file header (one, first)
    T,対象日,コマ,開始時刻,終了時刻,北海道余剰…,北海道不足…,北海道変更S,東北余剰…,…   titles (one)
    D,2026/06/01,1,00:00,00:30,12.34,12.34,0,…         data: day, コマ, per area 余剰/不足/flag

Columns are found by name in the T line: for the site's area the first column naming the
area and 余剰 (surplus: what a balancing group long in the コマ is paid per kWh) and the
first naming the area and 不足 (shortage: what a short group pays). The 変更 flag (the price
was revised) is ignored; the file holds the latest values.

Contract as for JEPX files (:mod:`vpp.forecast.prices.jepx`): an unknown record type, data
before the titles, a missing area column, a duplicated or missing コマ, a day without 48
コマ, a negative or implausible price → :class:`PriceFileError` naming row and field.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vpp.forecast.prices.common import (check_days, day_koma, decode_cp932, koma_start, parse_price,
                                        read_bytes)
from vpp.forecast.prices.errors import PriceFileError
from vpp.forecast.prices.jepx import AREAS

__all__ = ["ImbalancePrices", "parse_imbalance_csv", "read_imbalance_csv"]


@dataclass(frozen=True)
class ImbalancePrices:
    """Per コマ of ``area``: ``frame`` indexed by UTC slot start with ``surplus`` (余剰) and
    ``shortage`` (不足) [円/kWh]; ``title`` is the H line."""

    area: str
    frame: pd.DataFrame
    title: str

    def settle(self, imbalance_kwh: np.ndarray, index: pd.DatetimeIndex) -> np.ndarray:
        """Money per コマ [円] for ``imbalance_kwh`` = actual − plan (> 0: long, sold at the
        surplus price; < 0: short, bought at the shortage price). Positive = received."""
        p = self.frame.reindex(index)
        if p.isna().any().any():
            missing = p.index[p.isna().any(axis=1)][0]
            raise PriceFileError(f"no imbalance price for the slot starting {missing.isoformat()}")
        e = np.asarray(imbalance_kwh, float)
        return np.where(e >= 0, e * p["surplus"].to_numpy(), e * p["shortage"].to_numpy())


def parse_imbalance_csv(data: bytes, area: str, tz: str = "Asia/Tokyo", source: str = "<imbalance>") -> ImbalancePrices:
    """The imbalance prices of ``area`` in the file (format in the module docstring)."""
    if area not in AREAS:
        raise PriceFileError(f"unknown area {area!r} (one of {', '.join(AREAS)})", source=source, field="area")
    rows = list(csv.reader(io.StringIO(decode_cp932(data, source))))
    title, header = "", None
    i_day = i_koma = i_sur = i_sho = -1
    seen: dict[tuple, int] = {}
    starts, sur, sho = [], [], []
    for n, r in enumerate(rows, start=1):
        if not any(c.strip() for c in r):
            continue
        kind = r[0].strip()
        if kind == "H":
            title = ",".join(c.strip() for c in r[1:] if c.strip())
        elif kind == "T":
            header = [c.strip().replace(" ", "") for c in r]

            def col(pred, what: str) -> int:
                for i, h in enumerate(header):
                    if pred(h):
                        return i
                raise PriceFileError(f"no {what} column in the titles", source=source, row=n, field=what)
            i_day = col(lambda h: h in ("対象日", "年月日", "受渡日", "日付"), "対象日")
            i_koma = col(lambda h: h.startswith("コマ") or h.startswith("時刻コード"), "コマ")
            i_sur = col(lambda h: area in h and "余剰" in h, f"{area}余剰")
            i_sho = col(lambda h: area in h and "不足" in h, f"{area}不足")
        elif kind == "D":
            if header is None:
                raise PriceFileError("data (D) row before the titles (T) row", source=source, row=n)
            if len(r) <= max(i_day, i_koma, i_sur, i_sho):
                raise PriceFileError(f"{len(r)} fields, the titles need {max(i_day, i_koma, i_sur, i_sho) + 1}",
                                     source=source, row=n)
            d, k = day_koma(r, i_day, i_koma, header, seen, source, n)
            sur.append(parse_price(r[i_sur], source, n, header[i_sur]))
            sho.append(parse_price(r[i_sho], source, n, header[i_sho]))
            starts.append(koma_start(d, k, tz))
        else:
            raise PriceFileError(f"unknown record type {kind[:10]!r} (H, T or D)", source=source, row=n,
                                 field="record type")
    if not seen:
        raise PriceFileError("no data (D) rows", source=source)
    check_days(seen, source)
    frame = pd.DataFrame({"surplus": sur, "shortage": sho},
                         index=pd.DatetimeIndex(starts, name="slot_start")).sort_index()
    return ImbalancePrices(area, frame, title)


def read_imbalance_csv(path: str | Path, area: str, tz: str = "Asia/Tokyo") -> ImbalancePrices:
    """:func:`parse_imbalance_csv` of the file at ``path``."""
    return parse_imbalance_csv(read_bytes(path), area, tz, source=str(path))
