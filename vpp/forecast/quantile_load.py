"""Quantile load forecast (p10 / p50 / p90 [W] per slot) for a site and for many homes.

Recipe (:func:`site_load_quantiles`)::

    history (NaN, negatives, gaps dropped) on the slot grid ─► ≥ MIN_HISTORY_DAYS usable days?
      no  ─► today's profile (:func:`vpp.forecast.load.forecast_load`) as p50, a band from the
             profile's own errors on the last days (when there are ≥ 2), ``basis`` says why
      yes ─► features (calendar, jpholiday day type, temperature, lags: vpp.forecast.features)
             ─► QuantileGBM fitted on the days before today's local midnight (last HISTORY_DAYS),
                the most recent quarter of them held out for the conformal calibration
             ─► p10/p50/p90 for the horizon

Training is cached per local day (key: the training data itself), so the forecast job, a
re-plan and ``vpp plan`` on the same day train once; a fit takes well under a second for a
site (bench/README.md). The controller calls this from :func:`vpp.forecast.site.forecast_site`,
which its async entry points run in a worker thread, so a fit never blocks the event loop.

Many homes (:func:`home_load_quantiles`): one pooled model (targets are relative to each
home's own 7-day level, so 721 homes of any size share one model and one calibration), trained
on a seeded sample of homes and rows, predicted for every home in one batch.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from optimizer.uncertainty import forecast_quantiles
from vpp.forecast.features import SAME_TYPE_LOOKBACK, clean_history, design
from vpp.forecast.load import forecast_load
from vpp.forecast.pv import slot_length
from vpp.forecast.quantile_gbm import QuantileGBM

log = logging.getLogger(__name__)

#: Fewer usable days than this: the profile fallback (day types and a calibration set need weeks).
MIN_HISTORY_DAYS = 14
#: Days of history the model learns from (the newest quarter of them calibrates it).
HISTORY_DAYS = 56
#: Share of the training days (the newest) held out for the conformal calibration.
CALIBRATION_SHARE = 0.25
_CACHE_SIZE = 8


@dataclass(frozen=True)
class LoadQuantiles:
    """p10 / p50 / p90 [W] on the horizon index; ``p10``/``p90`` None when nothing tells the
    spread (no history at all); ``from_model``: the quantile model made them; ``basis``: how,
    or why not (e.g. ``profile fallback: 5 usable days of history < 14``)."""

    p10: pd.Series | None
    p50: pd.Series
    p90: pd.Series | None
    from_model: bool
    basis: str


def usable_days(clean: pd.Series, step: pd.Timedelta, tz: str) -> int:
    """Local days with at least half their slots measured."""
    if clean.empty:
        return 0
    spd = int(pd.Timedelta("1D") / step)
    counts = clean.notna().groupby(clean.index.tz_convert(tz).normalize()).sum()
    return int((counts >= spd / 2).sum())


def window_days(history_days: int = HISTORY_DAYS) -> int:
    """Days of history before today's local midnight the site model reads: its training days
    plus the same-day-type lookback of its features (``vpp.forecast.features``)."""
    return history_days + SAME_TYPE_LOOKBACK


# ------------------------------------------------------------------------------ cache
_cache: OrderedDict[str, QuantileGBM] = OrderedDict()
_cache_lock = threading.Lock()
fits = 0  #: number of model fits so far (the per-day cache is visible in tests)


def _cached_fit(key: str, make) -> QuantileGBM:
    global fits
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    model = make()  # outside the lock: another site's forecast need not wait for this fit
    with _cache_lock:
        fits += 1
        _cache[key] = model
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return model


def _key(*parts) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(np.ascontiguousarray(p).tobytes() if isinstance(p, np.ndarray) else repr(p).encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------ training
def series_scale(h: np.ndarray) -> np.ndarray:
    """Mean [W] of each row of ``h`` (NaN ignored), the level where no 7-day level exists;
    a row without data gets the median row's (1 W when none has data)."""
    with np.errstate(invalid="ignore"):
        m = np.array([np.nanmean(r) if np.isfinite(r).any() else np.nan for r in np.atleast_2d(h)])
    good = np.isfinite(m) & (m > 0)
    return np.where(good, m, float(np.median(m[good])) if good.any() else 1.0)


def _training_set(h: np.ndarray, grid: pd.DatetimeIndex, temp: pd.Series | None, tz: str,
                  train_from: pd.Timestamp, train_end: pd.Timestamp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, relative targets and calibration mask for the target slots of ``grid`` in
    ``[train_from, train_end)``, each issued at its local midnight and at the one before (see
    :mod:`vpp.forecast.features`); ``h``: ``(series, len(grid))``. The newest
    CALIBRATION_SHARE of days calibrate."""
    sel = (grid >= train_from) & (grid < train_end)
    rows = grid[sel]
    midnight = rows.tz_convert(tz).normalize()
    targets = rows.append(rows)
    issues = midnight.tz_convert("UTC").append((midnight - pd.Timedelta("1D")).tz_convert("UTC"))
    x, level = design(h, grid, targets, issues, tz, temp, series_scale(h))
    y = np.tile(h[:, sel], (1, 2)).reshape(-1) / level  # relative to the level (see vpp.forecast.features)
    uniq = midnight.unique().sort_values()
    n_cal = max(int(round(len(uniq) * CALIBRATION_SHARE)), 3)
    cal = np.tile(np.isin(midnight.append(midnight), uniq[-n_cal:]), h.shape[0])
    return x, y, cal


def fit_quantile_model(x: np.ndarray, y: np.ndarray, cal: np.ndarray, backend: str = "lightgbm",
                       max_rows: int | None = None, seed: int = 0) -> QuantileGBM:
    """Fit on the rows not in ``cal`` (a seeded sample of ``max_rows`` when more) and
    calibrate on the ``cal`` rows."""
    fit_rows = np.flatnonzero(~cal & np.isfinite(y))
    if max_rows is not None and len(fit_rows) > max_rows:
        fit_rows = np.sort(np.random.default_rng(seed).choice(fit_rows, max_rows, replace=False))
    cal_rows = np.flatnonzero(cal)
    if max_rows is not None and len(cal_rows) > max_rows:
        cal_rows = np.sort(np.random.default_rng(seed + 1).choice(cal_rows, max_rows, replace=False))
    return QuantileGBM(backend=backend, seed=seed).fit(x[fit_rows], y[fit_rows], x[cal_rows], y[cal_rows])


# ------------------------------------------------------------------------------ site
def site_load_quantiles(history: pd.Series | None, index: pd.DatetimeIndex, tz: str = "Asia/Tokyo",
                        temperature: pd.Series | None = None, *, default_daily_wh: float = 10_000.0,
                        min_days: int = MIN_HISTORY_DAYS, history_days: int = HISTORY_DAYS,
                        backend: str = "lightgbm", profile_history: pd.Series | None = None) -> LoadQuantiles:
    """p10/p50/p90 site load [W] for the slots starting at ``index`` (tz-aware, regular).

    Parameters
    ----------
    history : Series or None
        Measured site load [W] before ``index[0]`` (any resolution; NaN, inf, negative and
        non-numeric values are ignored, gaps are fine).
    temperature : Series or None
        Air temperature [°C] over the history and the horizon (measured/archived for the
        past, the forecast for the horizon); None or NaN = unknown (the model then leans on
        calendar and lags).
    min_days, history_days
        Usable days needed for the model / days it learns from.
    default_daily_wh : float
        Daily energy [Wh] of the profile fallback without history.
    profile_history : Series or None
        The history the profile fallback reads (default ``history``; the site forecast gives
        it the 28 days the profile has always used).
    """
    index = pd.DatetimeIndex(index)
    step = slot_length(index)
    t0 = index[0]
    midnight = t0.tz_convert(tz).normalize().tz_convert(t0.tz)
    # anchored at today's midnight, not at t0: every forecast of the day sees the same
    # training window (and hits the day's cached model); lags reach 14 days before it
    grid_start = (midnight - pd.Timedelta(days=window_days(history_days))).floor(step)
    clean = clean_history(history, step)
    clean = clean[(clean.index < t0) & (clean.index >= grid_start)]
    n_days = usable_days(clean, step, tz)
    if n_days < min_days:
        return profile_quantiles(history if profile_history is None else profile_history, index, tz,
                                 default_daily_wh, f"profile fallback: {n_days} usable days of load history "
                                 f"< {min_days} needed for the quantile model")
    grid = pd.date_range(grid_start, t0 - step, freq=step)
    h = clean.reindex(grid).to_numpy()[None, :]
    train_from = midnight - pd.Timedelta(days=history_days)
    in_train = (grid >= train_from) & (grid < midnight)
    tkey = None if temperature is None else pd.to_numeric(temperature, errors="coerce").astype(float)
    temp_train = None if tkey is None else tkey.reindex(grid[in_train]).to_numpy()
    key = _key("site", tz, step.value, midnight.value, backend, grid[0].value, h[:, grid < midnight],
               temp_train if temp_train is not None else "no-temp")

    def make() -> QuantileGBM:
        x, y, cal = _training_set(h, grid, tkey, tz, train_from, midnight)
        return fit_quantile_model(x, y, cal, backend)

    model = _cached_fit(key, make)
    issues = pd.DatetimeIndex(np.repeat(t0.tz_convert("UTC"), len(index)))
    x, level = design(h, grid, index, issues, tz, tkey, series_scale(h))
    p = model.predict(x) * level[:, None]
    basis = (f"quantile model ({model.backend}) on {n_days} days of load history, "
             f"conformal calibration on {model.n_calibration} slots")
    return LoadQuantiles(*(_series(p[:, i], index, basis) for i in range(3)), True, basis)


def _series(v: np.ndarray, index: pd.DatetimeIndex, basis: str) -> pd.Series:
    s = pd.Series(v, index=index, name="load_w")
    s.attrs["basis"] = basis
    return s


def profile_quantiles(history: pd.Series | None, index: pd.DatetimeIndex, tz: str, default_daily_wh: float,
                      why: str, max_days: int = 7) -> LoadQuantiles:
    """The fallback: today's profile forecast (:func:`vpp.forecast.load.forecast_load`) as
    p50; p10/p90 from its errors on up to ``max_days`` past days (each forecast from the
    history before it), when there are at least 2; ``basis`` = ``why`` + how the band was made."""
    p50 = forecast_load(history, index, tz, default_daily_wh=default_daily_wh)
    step = slot_length(index)
    midnight = index[0].tz_convert(tz).normalize().tz_convert(index[0].tz)
    clean = clean_history(history, step)
    clean = clean[clean.index < midnight]  # past days only: the same all day, so cached per day
    key = _key("profile-band", tz, step.value, midnight.value, max_days, default_daily_wh,
               clean.index.asi8, clean.to_numpy())
    with _cache_lock:
        errors = _band_cache.get(key)
    if errors is None:
        errors = _profile_errors(clean, tz, step, default_daily_wh, max_days)
        with _cache_lock:
            _band_cache[key] = errors
            while len(_band_cache) > _CACHE_SIZE:
                _band_cache.popitem(last=False)
    basis = why
    if len(errors) < 2:
        p50.attrs["basis"] = basis + "; no band: fewer than 2 past days to measure the profile's error"
        return LoadQuantiles(None, p50, None, False, p50.attrs["basis"])
    local = index.tz_convert(tz)
    sod = ((local.hour * 3600 + local.minute * 60) // int(step.total_seconds())).to_numpy()
    err = np.asarray(errors)[:, sod]
    lo, mid, hi = forecast_quantiles(err, p50.to_numpy(), q=0.1)
    basis += f"; band from the profile's errors on {len(errors)} past days"
    return LoadQuantiles(_series(lo, index, basis), _series(mid, index, basis), _series(hi, index, basis),
                         False, basis)


_band_cache: OrderedDict[str, list] = OrderedDict()


def _profile_errors(clean: pd.Series, tz: str, step: pd.Timedelta, default_daily_wh: float,
                    max_days: int) -> list:
    """Errors [W] (actual − profile forecast) per slot of up to ``max_days`` past days with at
    least half their slots measured, each forecast from the history before it."""
    spd = int(pd.Timedelta("1D") / step)
    days = clean.index.tz_convert(tz).normalize().unique().sort_values()[1:][-max_days:] if len(clean) else []
    errors = []
    for d in days:
        day_index = pd.date_range(d.tz_convert("UTC"), periods=spd, freq=step)
        actual = clean.reindex(day_index).to_numpy()
        if np.isfinite(actual).sum() < spd / 2:
            continue
        past = clean[clean.index < day_index[0]]
        errors.append(actual - forecast_load(past, day_index, tz, default_daily_wh=default_daily_wh).to_numpy())
    return errors


# ------------------------------------------------------------------------------ homes
@dataclass(frozen=True)
class HomeLoadQuantiles:
    """p10 / p50 / p90 [W] per home (frames: horizon index × home id) and how they were made."""

    p10: pd.DataFrame
    p50: pd.DataFrame
    p90: pd.DataFrame
    basis: str


class HomeLoadModel:
    """One pooled quantile model for many homes (load relative to each home's 7-day level).

    ``fit`` learns from a seeded sample of ``train_homes`` homes (``max_rows`` rows at most);
    ``predict`` forecasts every home of ``histories`` in one batch."""

    def __init__(self, tz: str = "Asia/Tokyo", *, backend: str = "lightgbm", train_homes: int = 48,
                 max_rows: int = 60_000, seed: int = 0):
        self.tz, self.backend, self.train_homes, self.max_rows, self.seed = tz, backend, train_homes, max_rows, seed
        self.model: QuantileGBM | None = None

    @staticmethod
    def _matrix(histories: pd.DataFrame, step: pd.Timedelta) -> tuple[pd.DatetimeIndex, np.ndarray]:
        """Regular grid and ``(homes, slots)`` load [W] (NaN, inf, negatives dropped)."""
        numeric = all(pd.api.types.is_numeric_dtype(t) for t in histories.dtypes)
        frame = (histories if numeric else histories.apply(pd.to_numeric, errors="coerce")).astype(float)
        frame = frame.where(np.isfinite(frame) & (frame >= 0))
        frame = frame.resample(step).mean()
        return pd.DatetimeIndex(frame.index), frame.to_numpy().T

    def fit(self, histories: pd.DataFrame, temperature: pd.Series | None, train_end: pd.Timestamp,
            step: pd.Timedelta = pd.Timedelta("15min")) -> "HomeLoadModel":
        """Learn from ``histories`` (time × home [W]) before ``train_end``."""
        hist = histories[histories.index < train_end]
        grid, h = self._matrix(hist, step)
        rng = np.random.default_rng(self.seed)
        pick = np.sort(rng.choice(h.shape[0], min(self.train_homes, h.shape[0]), replace=False))
        x, y, cal = _training_set(h[pick], grid, temperature, self.tz, grid[0], train_end)
        self.model = fit_quantile_model(x, y, cal, self.backend, self.max_rows, self.seed)
        return self

    def predict(self, histories: pd.DataFrame, index: pd.DatetimeIndex,
                temperature: pd.Series | None) -> HomeLoadQuantiles:
        """p10/p50/p90 [W] per home for the slots of ``index`` from each home's history before it."""
        if self.model is None:
            raise RuntimeError("HomeLoadModel.predict before fit")
        index = pd.DatetimeIndex(index)
        step = slot_length(index)
        hist = histories[(histories.index < index[0]) & (histories.index >= index[0] - pd.Timedelta("10D"))]
        grid, h = self._matrix(hist, step)
        issues = pd.DatetimeIndex(np.repeat(index[0].tz_convert("UTC"), len(index)))
        x, level = design(h, grid, index, issues, self.tz, temperature, series_scale(h))
        p = (self.model.predict(x) * level[:, None]).reshape(h.shape[0], len(index), 3)
        cols = list(histories.columns)
        basis = (f"pooled quantile model ({self.backend}) on {min(self.train_homes, len(cols))} of {len(cols)} "
                 f"homes, conformal calibration on {self.model.n_calibration} rows")
        return HomeLoadQuantiles(*(pd.DataFrame(p[:, :, i].T, index=index, columns=cols) for i in range(3)), basis)


def home_load_quantiles(histories: pd.DataFrame, index: pd.DatetimeIndex, tz: str = "Asia/Tokyo",
                        temperature: pd.Series | None = None, *, history_days: int = HISTORY_DAYS,
                        backend: str = "lightgbm", train_homes: int = 48) -> HomeLoadQuantiles:
    """Fit a :class:`HomeLoadModel` on the ``history_days`` before ``index[0]``'s local
    midnight and forecast every home (columns of ``histories``, [W]) for ``index``."""
    index = pd.DatetimeIndex(index)
    t0 = index[0]
    midnight = t0.tz_convert(tz).normalize().tz_convert(t0.tz)
    train = histories[histories.index >= midnight - pd.Timedelta(days=history_days)]
    model = HomeLoadModel(tz, backend=backend, train_homes=train_homes).fit(
        train, temperature, midnight, slot_length(index))
    return model.predict(histories, index, temperature)
