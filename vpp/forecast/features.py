"""Feature matrices for the quantile load forecast (pure, vectorised).

One row per (target slot, series, issue time); every feature is known at the *issue time*
(the moment the forecast is made: nothing measured at or after it is used):

==============  =========================================================================
``sod``         slot of the local day (0 … slots per day − 1)
``dow``         local day of week (Monday = 0)
``day_type``    0 weekday, 1 Saturday, 2 Sunday / public holiday (``jpholiday``)
``doy_sin/cos`` season (day of year on the unit circle)
``month``       local month 1 … 12
``temp``        air temperature [°C] (the weather provider's forecast for future slots)
``temp_day``    mean temperature of the target's local day [°C] (buildings respond slowly)
``temp_shift``  ``temp_day`` − mean temperature of the 24 h before the issue [K]
``lead_h``      hours from the issue to the target slot
``recent``      load at the same slot of day on the latest day before the issue (mean of the
                hour up to it), ÷ level
``lag_7d``      load 7 days before the target (same weekday, hour mean), ÷ level
``same_type``   mean load at the same slot on the latest 4 days of the target's day type
                before the issue (the profile forecast's recipe, unweighted), ÷ level
==============  =========================================================================

The *level* is the mean load over the 24 h before the issue. The model learns load ÷ level:
trees cannot extrapolate, and a level that rises through a cold month would otherwise leave
the forecast stuck at past weeks' values; relative targets also let homes of any size share
one model. Gaps in the history give NaN features, which both gradient-boosting back-ends
handle natively. For training, every day is a target twice: issued at its own local
midnight (lead 0–24 h) and at the one before (lead 24–48 h), the day-ahead horizons.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from vpp.forecast.load import day_type

FEATURES = ["sod", "dow", "day_type", "doy_sin", "doy_cos", "month", "temp", "temp_day", "temp_shift",
            "lead_h", "recent", "lag_7d", "same_type"]
#: Same-day-type days averaged into ``same_type`` (as the profile forecast does), looked for
#: within this many days back.
SAME_TYPE_DAYS, SAME_TYPE_LOOKBACK = 4, 14
DAY = pd.Timedelta("1D")


def calendar_features(index: pd.DatetimeIndex, tz: str) -> np.ndarray:
    """Calendar features ``(len(index), 6)`` (sod … month, see module table) per slot start."""
    index = pd.DatetimeIndex(index)
    local = index.tz_convert(tz)
    step = _step_s(index)
    sod = (local.hour * 3600 + local.minute * 60 + local.second).to_numpy() // step
    days = local.normalize().tz_localize(None)
    uniq, inv = np.unique(days.to_numpy(), return_inverse=True)
    dt = day_type(pd.DatetimeIndex(uniq))[inv]
    ang = 2 * np.pi * local.day_of_year.to_numpy() / 365.25
    return np.column_stack([sod, local.day_of_week.to_numpy(), dt, np.sin(ang), np.cos(ang),
                            local.month.to_numpy()]).astype(float)


def clean_history(history: pd.Series | None, step: pd.Timedelta) -> pd.Series:
    """Load history [W] as slot means on a regular grid of ``step``: non-numeric, NaN,
    infinite and negative values dropped first (a meter glitch is not a load); empty slots NaN."""
    empty = pd.Series(dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
    if history is None or len(history) == 0 or not isinstance(history.index, pd.DatetimeIndex):
        return empty
    h = pd.to_numeric(history, errors="coerce").astype(float)
    if h.index.tz is None:
        h = h.tz_localize("UTC")
    v = h.to_numpy()
    h = h[np.isfinite(v) & (v >= 0)]
    if h.empty:
        return empty
    return h.sort_index().resample(step).mean()


def design(h: np.ndarray, grid: pd.DatetimeIndex, targets: pd.DatetimeIndex, issues: np.ndarray,
           tz: str, temp: pd.Series | None, fallback_level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(series × len(targets), len(FEATURES))`` (series-major) and the level [W] per row.

    ``h``: ``(series, len(grid))`` load [W] on the regular ``grid`` (NaN = missing; values at or
    after a row's issue are never read); ``targets``: slot starts to forecast; ``issues``:
    issue time per target (tz-aware, one per target); ``temp``: temperature [°C] on slot starts
    covering the day before the first issue to the last target; ``fallback_level``: level per
    series [W] where the 24 h before the issue hold no data."""
    h = np.atleast_2d(np.asarray(h, dtype=float))
    step = grid[1] - grid[0] if len(grid) > 1 else pd.Timedelta(seconds=_step_s(targets))
    spd = int(DAY / step)
    pt = _positions(targets, grid[0], step)
    pi = _positions(pd.DatetimeIndex(issues), grid[0], step)
    smooth = _window_nanmean(h, max(int(pd.Timedelta("1h") / step), 1), centred=False)
    trailing = _window_nanmean(h, spd, centred=False)  # trailing[i] = mean of h[i-spd+1 .. i]
    level = _take(trailing, pi - 1)
    fb = np.broadcast_to(np.asarray(fallback_level, dtype=float).reshape(-1, 1), level.shape)
    level = np.where(np.isfinite(level) & (level > 0), level, fb)
    k = np.maximum((pt - pi) // spd + 1, 1)  # latest same-slot day strictly before the issue
    recent = _take(smooth, pt - k * spd)
    lag7 = np.where((pt - 7 * spd < pi)[None, :], _take(smooth, pt - 7 * spd), np.nan)
    same = _same_type_mean(h, grid, targets, pt, pi, spd, tz)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.stack([recent / level, lag7 / level, same / level], axis=-1)
    shared = np.hstack([calendar_features(targets, tz), _temperature(targets, issues, temp, tz),
                        ((pt - pi) * step.total_seconds() / 3600.0)[:, None]])
    x = np.hstack([np.tile(shared, (h.shape[0], 1)), rel.reshape(-1, 3)])
    return x, level.reshape(-1)


def _same_type_mean(h: np.ndarray, grid: pd.DatetimeIndex, targets: pd.DatetimeIndex, pt: np.ndarray,
                    pi: np.ndarray, spd: int, tz: str) -> np.ndarray:
    """Mean of ``h`` at the same slot on the latest SAME_TYPE_DAYS days before the issue whose
    day type matches the target's (NaN days skipped), ``(series, len(targets))``."""
    days = pd.date_range(grid[0].tz_convert(tz).normalize() - pd.Timedelta(days=1),
                         targets[-1].tz_convert(tz).normalize() + pd.Timedelta(days=1), freq="D")
    types = day_type(days.tz_localize(None))
    day0 = days[0]
    tday = ((targets.tz_convert(tz).normalize() - day0) / DAY).to_numpy(dtype=float).astype(np.int64)
    total = np.zeros((h.shape[0], len(pt)))
    count = np.zeros((h.shape[0], len(pt)))
    for k in range(1, SAME_TYPE_LOOKBACK + 1):
        j = pt - k * spd
        same = (types[np.clip(tday - k, 0, len(types) - 1)] == types[tday]) & (j < pi) & (tday - k >= 0)
        v = _take(h, j)
        use = same[None, :] & np.isfinite(v) & (count < SAME_TYPE_DAYS)
        total += np.where(use, v, 0.0)
        count += use
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _temperature(targets: pd.DatetimeIndex, issues: np.ndarray, temp: pd.Series | None, tz: str) -> np.ndarray:
    """``temp``, ``temp_day``, ``temp_shift`` per target (NaN where unknown)."""
    n = len(targets)
    if temp is None or len(temp) == 0 or n == 0:
        return np.full((n, 3), np.nan)
    ts = pd.to_numeric(temp, errors="coerce").astype(float)
    ts = ts[~ts.index.duplicated()].sort_index()
    t = ts.reindex(targets).to_numpy()
    days = targets.tz_convert(tz).normalize()
    day_mean = pd.Series(t, index=targets).groupby(days).transform("mean").to_numpy()
    step = pd.Timedelta(seconds=_step_s(targets))
    issues = pd.DatetimeIndex(issues)
    grid = pd.date_range(min(issues.min() - DAY, ts.index.min()), max(targets[-1], ts.index.max()), freq=step)
    tr = _window_nanmean(ts.reindex(grid).to_numpy()[None, :], int(DAY / step), centred=False)[0]
    before = _take(tr[None, :], _positions(issues, grid[0], step) - 1)[0]
    return np.column_stack([t, day_mean, day_mean - before])


def _positions(times: pd.DatetimeIndex, start: pd.Timestamp, step: pd.Timedelta) -> np.ndarray:
    return np.floor(((pd.DatetimeIndex(times) - start) / step).to_numpy(dtype=float)).astype(np.int64)


def _take(arr: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``arr[:, j]`` with NaN where ``j`` is outside the array."""
    ok = (j >= 0) & (j < arr.shape[1])
    out = np.full((arr.shape[0], len(j)), np.nan)
    out[:, ok] = arr[:, j[ok]]
    return out


def _window_nanmean(h: np.ndarray, width: int, centred: bool) -> np.ndarray:
    """NaN-ignoring moving mean along axis 1 by cumulative sums (O(n), any width)."""
    ok = np.isfinite(h)
    v = np.where(ok, h, 0.0)
    cs = np.concatenate([np.zeros((h.shape[0], 1)), np.cumsum(v, axis=1)], axis=1)
    cn = np.concatenate([np.zeros((h.shape[0], 1)), np.cumsum(ok, axis=1)], axis=1)
    n = h.shape[1]
    i = np.arange(n)
    lo = np.clip(i - width // 2 if centred else i - width + 1, 0, n)
    hi = np.clip(i - width // 2 + width if centred else i + 1, 0, n)
    s, c = cs[:, hi] - cs[:, lo], cn[:, hi] - cn[:, lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def _step_s(index: pd.DatetimeIndex) -> int:
    if index.freq is not None:
        return int(pd.Timedelta(index.freq).total_seconds())
    if len(index) > 1:
        return int(np.median(np.diff(index.as_unit("s").asi8)))
    return 900
