"""Shared rules of the Japanese price files: cp932 text, dates, コマ 1–48, plausible prices."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vpp.forecast.prices.errors import PriceFileError
from vpp.slots import SLOT_S

#: コマ per day: Japan has no DST, a day has exactly 48 half hours.
KOMA_PER_DAY = 48
#: Highest price taken as real [円/kWh]. JEPX's record area price is 251 円/kWh (Jan 2021) and
#: imbalance prices are capped at 600 円/kWh in a supply emergency; above this is a unit or
#: column mix-up (e.g. 円/MWh).
MAX_PRICE_PER_KWH = 1000.0


def decode_cp932(data: bytes, source: str) -> str:
    """Text of a cp932 (Shift_JIS) file; a UTF-8 file or any other encoding is refused."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise PriceFileError("UTF-8 (BOM) file: JEPX and imbalance files are cp932 (Shift_JIS)", source=source)
    try:
        return data.decode("cp932")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise PriceFileError(f"not cp932 (Shift_JIS) text: byte {e.start} cannot be decoded", source=source,
                             row=line) from None


def read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise PriceFileError(f"cannot read: {e.strerror}", source=str(path)) from None


def parse_date(text: str, source: str, row: int, field: str) -> date:
    """``2026/06/01``, ``2026-06-01`` or ``20260601``."""
    s = text.strip()
    for fmt in ("%Y/%m/%d", "%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            pass
    raise PriceFileError(f"not a date: {text!r}", source=source, row=row, field=field)


def parse_koma(text: str, source: str, row: int, field: str) -> int:
    try:
        k = int(str(text).strip())
    except ValueError:
        raise PriceFileError(f"not a コマ number: {text!r}", source=source, row=row, field=field) from None
    if not 1 <= k <= KOMA_PER_DAY:
        raise PriceFileError(f"コマ {k} outside 1..{KOMA_PER_DAY} (Japan has no DST: 48 コマ a day)",
                             source=source, row=row, field=field)
    return k


def parse_price(text: str, source: str, row: int, field: str, allow_negative: bool = False) -> float:
    try:
        v = float(str(text).strip().replace(",", ""))
    except ValueError:
        raise PriceFileError(f"not a price: {text!r}", source=source, row=row, field=field) from None
    if not np.isfinite(v):
        raise PriceFileError(f"price {text!r} is not finite", source=source, row=row, field=field)
    if v < 0 and not allow_negative:
        raise PriceFileError(f"negative price {v}", source=source, row=row, field=field)
    if abs(v) > MAX_PRICE_PER_KWH:
        raise PriceFileError(f"implausible price {v} 円/kWh (above {MAX_PRICE_PER_KWH:g}: 円/MWh?)",
                             source=source, row=row, field=field)
    return v


def day_koma(r: list[str], i_day: int, i_koma: int, header: list[str], seen: dict[tuple[date, int], int],
             source: str, row: int) -> tuple[date, int]:
    """The row's (day, コマ), recorded in ``seen`` (a :class:`PriceFileError` on a repeat)."""
    d = parse_date(r[i_day], source, row, header[i_day])
    k = parse_koma(r[i_koma], source, row, header[i_koma])
    if (d, k) in seen:
        raise PriceFileError(f"duplicate コマ {k} of {d.isoformat()} (first on row {seen[(d, k)]})",
                             source=source, row=row, field=header[i_koma])
    seen[(d, k)] = row
    return d, k


def check_days(keys: dict[tuple[date, int], int], source: str) -> None:
    """Every day present has each コマ 1..48 exactly once (duplicates are caught on insert)."""
    days: dict[date, set[int]] = {}
    for d, k in keys:
        days.setdefault(d, set()).add(k)
    for d in sorted(days):
        have = days[d]
        if len(have) != KOMA_PER_DAY:
            missing = sorted(set(range(1, KOMA_PER_DAY + 1)) - have)
            raise PriceFileError(f"day {d.isoformat()} has {len(have)} コマ, needs {KOMA_PER_DAY} "
                                 f"(missing {', '.join(map(str, missing[:8]))}{'…' if len(missing) > 8 else ''})",
                                 source=source)


def koma_start(d: date, koma: int, tz: str) -> pd.Timestamp:
    """UTC start of コマ ``koma`` (1 = 00:00–00:30 local) of local day ``d``."""
    local = datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz)) + timedelta(seconds=SLOT_S * (koma - 1))
    return pd.Timestamp(local).tz_convert("UTC")


def koma_of(ts: pd.Timestamp, tz: str) -> tuple[date, int]:
    """Local day and コマ (1..48) of the slot starting at ``ts``."""
    loc = pd.Timestamp(ts).tz_convert(tz)
    return loc.date(), (loc.hour * 3600 + loc.minute * 60) // SLOT_S + 1
