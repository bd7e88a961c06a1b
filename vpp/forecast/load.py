"""Site load forecast [W] from stored history: same day type, same slot, recency-weighted.

Day types (site local calendar): 0 = weekday, 1 = Saturday, 2 = Sunday or Japanese public
holiday (``jpholiday``). For each day type the ``n_days`` most recent matching days (within
``max_age_days``) are averaged per slot with weights ``0.5 ** (age_days / halflife_days)``.
Slots without usable history fall back to the all-day-types profile, then to a default
residential profile scaled to ``default_daily_wh``.
"""
from __future__ import annotations

from datetime import date

import jpholiday
import numpy as np
import pandas as pd

from vpp.forecast.pv import slot_length

WEEKDAY, SATURDAY, HOLIDAY = 0, 1, 2

#: Typical Japanese household load shape, relative, per local hour 0..23 (morning and
#: evening peaks, low at night and mid-day). Only the shape matters; it is rescaled.
DEFAULT_SHAPE = np.array([
    0.55, 0.50, 0.48, 0.47, 0.48, 0.55, 0.80, 1.10, 1.05, 0.85, 0.75, 0.75,
    0.80, 0.75, 0.72, 0.75, 0.90, 1.20, 1.50, 1.60, 1.50, 1.30, 1.00, 0.75,
])


def day_type(days: pd.DatetimeIndex | list[date]) -> np.ndarray:
    """Day type per local date: 0 weekday, 1 Saturday, 2 Sunday or public holiday."""
    d = pd.DatetimeIndex(days)
    wd = d.day_of_week.to_numpy()  # Monday = 0 (``weekday`` is deprecated in pandas 3)
    hol = np.array([jpholiday.is_holiday(x.date()) for x in d], dtype=bool)
    return np.where(hol | (wd == 6), HOLIDAY, np.where(wd == 5, SATURDAY, WEEKDAY))


def default_profile(slots_per_day: int, daily_wh: float) -> np.ndarray:
    """Default load [W] per slot of the local day, integrating to ``daily_wh`` [Wh] per day."""
    hours = (np.arange(slots_per_day) + 0.5) * 24.0 / slots_per_day
    shape = np.interp(hours, np.arange(24) + 0.5, DEFAULT_SHAPE, period=24)
    return shape / shape.mean() * daily_wh / 24.0


def _day_matrix(history: pd.Series, tz: str, slot: pd.Timedelta, before: pd.Timestamp) -> pd.DataFrame:
    """Mean load [W] as a (local date × slot of day) matrix; negatives and non-finite → NaN."""
    h = pd.to_numeric(history, errors="coerce").astype(float)
    h = h[np.isfinite(h.to_numpy()) & (h.to_numpy() >= 0)]
    h = h[h.index < before]
    if h.empty:
        return pd.DataFrame()
    local = h.tz_convert(tz) if h.index.tz is not None else h.tz_localize("UTC").tz_convert(tz)
    means = local.resample(slot).mean().dropna()
    idx = pd.DatetimeIndex(means.index)
    sod = ((idx.hour * 3600 + idx.minute * 60 + idx.second) // int(slot.total_seconds())).to_numpy()
    frame = pd.DataFrame({"day": idx.normalize().tz_localize(None), "slot": sod, "w": means.to_numpy()})
    return frame.pivot_table(index="day", columns="slot", values="w", aggfunc="mean")


def _weighted_profile(m: pd.DataFrame, ref_day: pd.Timestamp, n_days: int, halflife_days: float,
                      slots_per_day: int) -> np.ndarray:
    """Recency-weighted mean over the last ``n_days`` rows of ``m`` (days × slots) [W]."""
    m = m.reindex(columns=range(slots_per_day))
    usable = m.notna().sum(axis=1) >= slots_per_day / 2
    m = m[usable].sort_index().tail(n_days)
    if m.empty:
        return np.full(slots_per_day, np.nan)
    age = (ref_day - m.index).days.to_numpy(dtype=float)
    w = (0.5 ** (age / halflife_days))[:, None]
    x = m.to_numpy()
    ok = np.isfinite(x)
    num = np.where(ok, x * w, 0.0).sum(axis=0)
    den = np.where(ok, w, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def forecast_load(history: pd.Series | None, index: pd.DatetimeIndex, tz: str = "Asia/Tokyo", *,
                  n_days: int = 4, halflife_days: float = 7.0, max_age_days: int = 56,
                  default_daily_wh: float = 10_000.0) -> pd.Series:
    """Site load forecast [W] for the slots starting at ``index`` (tz-aware).

    Parameters
    ----------
    history : Series or None
        Measured site load [W] (any resolution, tz-aware index). NaN and negative values
        are ignored.
    index : DatetimeIndex
        Slot starts of the horizon; the slot length is its ``freq`` (e.g. 15 or 30 min) and
        must divide a day.
    tz : str
        Site time zone: day types and slots-of-day are local.
    n_days, halflife_days, max_age_days
        How many matching days, their recency weighting [days] and the look-back limit [days].
    default_daily_wh : float
        Daily energy [Wh] of the default profile used where there is no history.
    """
    index = pd.DatetimeIndex(index)
    slot = slot_length(index)
    spd = int(pd.Timedelta("1D") / slot)
    local = index.tz_convert(tz)
    days = local.normalize().tz_localize(None)
    target_sod = ((local.hour * 3600 + local.minute * 60) // int(slot.total_seconds())).to_numpy()
    target_type = day_type(days)
    fallback = default_profile(spd, default_daily_wh)

    profiles = {t: np.full(spd, np.nan) for t in (WEEKDAY, SATURDAY, HOLIDAY)}
    if history is not None and len(history):
        m = _day_matrix(history, tz, slot, index[0])
        if not m.empty:
            ref = days[0]
            m = m[(ref - m.index).days <= max_age_days]
            types = day_type(m.index) if len(m) else np.array([], dtype=int)
            overall = _weighted_profile(m, ref, n_days, halflife_days, spd)
            fallback = np.where(np.isfinite(overall), overall, fallback)
            for t in profiles:
                profiles[t] = _weighted_profile(m[types == t], ref, n_days, halflife_days, spd)
    table = np.vstack([np.where(np.isfinite(profiles[t]), profiles[t], fallback)
                       for t in (WEEKDAY, SATURDAY, HOLIDAY)])
    return pd.Series(table[target_type, target_sod], index=index, name="load_w")
