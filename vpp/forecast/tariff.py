"""Expand a time-of-use :class:`vpp.config.Tariff` into per-slot price and CO2 series."""
from __future__ import annotations

from datetime import time

import numpy as np
import pandas as pd

from vpp.config import Tariff, TouPeriod


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def period_mask(period: TouPeriod, local: pd.DatetimeIndex) -> np.ndarray:
    """True where the local timestamps fall in the period (``end <= start`` wraps midnight;
    ``end == start`` covers the whole day) and in its months, if any are listed."""
    sod = (local.hour * 3600 + local.minute * 60 + local.second).to_numpy()
    s, e = _seconds(period.start), _seconds(period.end)
    inside = (sod >= s) & (sod < e) if e > s else (sod >= s) | (sod < e)
    if period.months:
        inside &= np.isin(local.month.to_numpy(), period.months)
    return inside


def expand_tariff(tariff: Tariff, index: pd.DatetimeIndex, tz: str = "Asia/Tokyo") -> pd.DataFrame:
    """Per-slot tariff for slots starting at ``index`` (tz-aware).

    Each slot takes the first listed period containing its start in site local time.

    Returns
    -------
    DataFrame indexed like ``index`` with ``buy_per_kwh``, ``sell_per_kwh`` [currency/kWh],
    ``co2_kg_per_kwh`` [kg/kWh], ``co2_cost_per_kwh`` [currency/kWh] and ``period`` (name).

    Raises
    ------
    ValueError
        If some slot is covered by no period (the message names the first such local time).
    """
    index = pd.DatetimeIndex(index)
    local = index.tz_convert(tz)
    n = len(index)
    buy = np.full(n, np.nan)
    names = np.full(n, None, dtype=object)
    for p in tariff.periods:
        m = period_mask(p, local) & np.isnan(buy)
        buy[m] = p.buy_per_kwh
        names[m] = p.name
    gaps = np.isnan(buy)
    if gaps.any():
        raise ValueError(f"tariff has no period covering {local[np.argmax(gaps)].isoformat()} "
                         f"({int(gaps.sum())} slots uncovered)")
    return pd.DataFrame({
        "buy_per_kwh": buy,
        "sell_per_kwh": float(tariff.sell_per_kwh),
        "co2_kg_per_kwh": float(tariff.co2_kg_per_kwh),
        "co2_cost_per_kwh": float(tariff.co2_kg_per_kwh * tariff.co2_price_per_kg),
        "period": names,
    }, index=index)
