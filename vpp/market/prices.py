"""Aggregator price inputs per 30-min slot: parse, check, align to a plan horizon.

CSV format (one row per 30-min slot; header required)::

    slot_start,capacity_up,capacity_down,energy_up,energy_down,spot
    2026-06-22T00:00:00+09:00,3.2,1.1,25.0,0.0,11.4

``slot_start`` is ISO 8601 with a UTC offset (naive times are read in the site time zone);
``capacity_*`` [円/kW per 30-min slot] is paid for the ΔkW held; ``energy_*`` [円/kWh] per kWh
dispatched; ``spot`` [円/kWh] is the day-ahead price. Only ``slot_start`` and
``capacity_up`` are required; missing columns are NaN.

Contract: a negative price, a slot not on a 30-min boundary, a duplicate slot, or a row for
another day than the bid day raises :class:`PriceError`; an empty cell (or a slot absent from
the file) means "no price" and that slot is not offered — never a guess that could sell
capacity the reserve needs. Defaults from config (:func:`default_prices`) apply the same
capacity price up and down and the energy price to up-activation only.
"""
from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from optimizer import MarketPrices, PriceError
from vpp.config import VppSection

__all__ = ["PriceError", "COLUMNS", "SLOT_S", "parse_price_csv", "read_price_csv", "default_prices",
           "prices_for_day", "day_slots", "to_market_prices"]

from vpp.slots import SLOT_S  # noqa: E402 - the one slot length
COLUMNS = ("capacity_up", "capacity_down", "energy_up", "energy_down", "spot")


def parse_price_csv(text: str, tz: str = "Asia/Tokyo") -> pd.DataFrame:
    """Prices per slot, indexed by UTC slot start, columns :data:`COLUMNS` (NaN = no price)."""
    try:
        df = pd.read_csv(io.StringIO(text), dtype={"slot_start": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise PriceError(f"price CSV unreadable: {e}") from None
    if "slot_start" not in df.columns or "capacity_up" not in df.columns:
        raise PriceError("price CSV needs columns slot_start and capacity_up")
    unknown = set(df.columns) - {"slot_start", *COLUMNS}
    if unknown:
        raise PriceError(f"price CSV has unknown columns: {', '.join(sorted(unknown))}")
    try:
        ts = [pd.Timestamp(s) for s in df["slot_start"]]
    except (ValueError, TypeError) as e:
        raise PriceError(f"bad slot_start: {e}") from None
    ts = [t.tz_localize(tz) if t.tzinfo is None else t for t in ts]
    idx = pd.DatetimeIndex([t.tz_convert("UTC") for t in ts], name="slot_start")
    off = [t for t in idx if t.value % (SLOT_S * 10**9)]
    if off:
        raise PriceError(f"slot {off[0].isoformat()} is not on a 30-min boundary")
    if idx.has_duplicates:
        raise PriceError(f"duplicate slot {idx[idx.duplicated()][0].isoformat()}")
    out = pd.DataFrame(index=idx)
    for c in COLUMNS:
        col = pd.to_numeric(df[c], errors="coerce").to_numpy(float) if c in df.columns else np.full(len(df), np.nan)
        if c in df.columns and np.any(pd.isna(col) & df[c].notna().to_numpy()):
            raise PriceError(f"{c}: non-numeric price")
        if np.any(col < 0):
            raise PriceError(f"{c}: negative price at {idx[int(np.argmax(col < 0))].isoformat()}")
        if np.any(np.isinf(col)):
            raise PriceError(f"{c}: infinite price")
        out[c] = col
    return out.sort_index()


def read_price_csv(path: str | Path, tz: str = "Asia/Tokyo") -> pd.DataFrame:
    """Read a price CSV (format in the module docstring)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise PriceError(f"cannot read prices {path}: {e}") from None
    return parse_price_csv(text, tz)


def day_slots(day: date, tz: str = "Asia/Tokyo") -> pd.DatetimeIndex:
    """UTC starts of the 48 30-min slots of local ``day``."""
    start = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz))
    end = start + timedelta(days=1)
    return pd.date_range(pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC"),
                         freq=f"{SLOT_S}s", inclusive="left", name="slot_start")


def prices_for_day(prices: pd.DataFrame, day: date, tz: str = "Asia/Tokyo") -> pd.DataFrame:
    """The bid day's prices on its 48 slots; a row for another day raises :class:`PriceError`,
    slots the file lacks are NaN (not offered)."""
    slots = day_slots(day, tz)
    wrong = prices.index.difference(slots)
    if len(wrong):
        local = wrong[0].tz_convert(tz)
        raise PriceError(f"prices for the wrong day: {local.isoformat()} is not on {day.isoformat()}")
    return prices.reindex(slots)


def default_prices(vpp: VppSection, day: date, tz: str = "Asia/Tokyo") -> pd.DataFrame:
    """Flat prices from config for local ``day``: ``capacity_price_per_kw`` both ways,
    ``energy_price_per_kwh`` for up-activation, no spot price."""
    slots = day_slots(day, tz)
    n = len(slots)
    return pd.DataFrame({"capacity_up": np.full(n, vpp.capacity_price_per_kw),
                         "capacity_down": np.full(n, vpp.capacity_price_per_kw),
                         "energy_up": np.full(n, vpp.energy_price_per_kwh),
                         "energy_down": np.zeros(n), "spot": np.full(n, np.nan)}, index=slots)


def to_market_prices(prices: pd.DataFrame, start: datetime, n_slots: int) -> MarketPrices:
    """:class:`optimizer.MarketPrices` for ``n_slots`` 30-min offer slots from ``start`` (on a
    30-min boundary); slots without a price are NaN (no offer)."""
    if pd.Timestamp(start).value % (SLOT_S * 10**9):
        raise PriceError(f"horizon start {start.isoformat()} is not on a 30-min boundary")
    idx = pd.date_range(pd.Timestamp(start).tz_convert("UTC"), periods=n_slots, freq=f"{SLOT_S}s")
    p = prices.reindex(idx)
    return MarketPrices(*(p[c].to_numpy(float) for c in COLUMNS))
