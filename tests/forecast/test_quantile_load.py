"""Quantile load forecast: calibration on held-out synthetic data, monotone quantiles, the
profile fallback with its reason, bad history, the per-day training cache, many homes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulators.synthetic_load import synthetic_homes, synthetic_site, synthetic_weather
from vpp.forecast import quantile_load as ql
from vpp.forecast.load import forecast_load
from vpp.forecast.quantile_gbm import QuantileGBM, conformal_margin, coverage, pinball

TZ = "Asia/Tokyo"
STEP = pd.Timedelta("15min")


@pytest.fixture(scope="module")
def year():
    """40 days of synthetic weather and a 40-home site (small: tests stay fast)."""
    w = synthetic_weather(start="2025-01-05", days=40, seed=3)
    return w, synthetic_site(w, homes=40, seed=4)


def day_index(w: pd.DataFrame, d: int) -> pd.DatetimeIndex:
    return pd.date_range(w.index[0] + pd.Timedelta(days=d), periods=96, freq=STEP)


def test_conformal_coverage_on_held_out_synthetic_days_is_nominal():
    """Fit / calibrate / test on disjoint random days of 30 synthetic homes: the p10–p90
    interval covers 80 % ± 5 points of the held-out slots."""
    w = synthetic_weather(start="2025-01-05", days=36, seed=11)
    homes = synthetic_homes(w, 30, seed=12)
    h = homes.to_numpy().T.astype(float)
    grid = pd.DatetimeIndex(homes.index)
    x, y, _ = ql._training_set(h, grid, w["temp_forecast"], TZ, grid[0] + pd.Timedelta("8D"), grid[-1] + STEP)
    days = np.tile(np.repeat(np.arange(len(y) // (h.shape[0] * 2) // 96), 96), h.shape[0] * 2)
    rng = np.random.default_rng(0)
    perm = rng.permutation(days.max() + 1)
    part = np.empty(days.max() + 1, int)
    part[perm] = np.arange(len(perm)) % 3  # 0 fit, 1 calibrate, 2 test
    which = part[days]
    fit = np.flatnonzero(which == 0)
    fit = rng.choice(fit, 20_000, replace=False)
    model = QuantileGBM().fit(x[fit], y[fit], x[which == 1], y[which == 1])
    p = model.predict(x[which == 2])
    cov = coverage(y[which == 2], p[:, 0], p[:, 2])
    assert 0.75 <= cov <= 0.85, cov
    assert model.n_calibration > 1000
    # the raw boosters alone are not what is tested: the calibration moved the tails
    assert model.adjust != (0.0, 0.0)


def test_conformal_margin_is_the_finite_sample_quantile():
    scores = np.arange(1.0, 10.0)  # n = 9, tail 0.1: rank ceil(10 * 0.9) = 9
    assert conformal_margin(scores, 0.1) == 9.0
    assert conformal_margin(scores, 0.5) == 5.0
    assert conformal_margin(np.array([np.nan]), 0.1) == 0.0


def test_site_quantiles_beat_nothing_and_are_monotone(year):
    """With 4 weeks of history the model forecasts a held-out day: p10 ≤ p50 ≤ p90, all ≥ 0,
    finite, and its p50 pinball loss is in the profile's range (not garbage)."""
    w, site = year
    idx = day_index(w, 30)
    temp = w["temp_air"].where(w.index < idx[0], w["temp_forecast"])
    q = ql.site_load_quantiles(site[site.index < idx[0]], idx, TZ, temp)
    assert q.from_model and "quantile model" in q.basis and q.p10.attrs["basis"] == q.basis
    p = np.column_stack([q.p10, q.p50, q.p90])
    assert np.isfinite(p).all() and (p >= 0).all()
    assert (np.diff(p, axis=1) >= 0).all()
    assert (q.p90 - q.p10).mean() > 0.05 * q.p50.mean()  # a real band
    prof = forecast_load(site[site.index < idx[0]], idx, TZ)
    y = site[idx].to_numpy()
    assert pinball(y, q.p50, 0.5) < 2 * pinball(y, prof, 0.5)


def test_monotone_for_any_features_including_missing():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 4))
    y = x[:, 0] * 3 + rng.normal(size=2000) * (1 + np.abs(x[:, 1]))
    m = QuantileGBM(n_estimators=30).fit(x[:1500], y[:1500], x[1500:], y[1500:])
    test = rng.normal(size=(500, 4)) * 5
    test[rng.random(test.shape) < 0.2] = np.nan
    p = m.predict(test)
    assert (np.diff(p, axis=1) >= 0).all() and (p >= 0).all()


def test_short_history_falls_back_to_the_profile_and_says_why(year):
    w, site = year
    idx = day_index(w, 20)
    short = site[(site.index < idx[0]) & (site.index >= idx[0] - pd.Timedelta("5D"))]
    q = ql.site_load_quantiles(short, idx, TZ, w["temp_air"])
    assert not q.from_model
    assert q.basis.startswith("profile fallback: 5 usable days of load history < 14")
    pd.testing.assert_series_equal(q.p50, forecast_load(short, idx, TZ), check_names=False, check_exact=True)
    assert q.p10 is not None and (q.p10 <= q.p50).all() and (q.p90 >= q.p50).all()
    assert "profile's errors on 4 past days" in q.p10.attrs["basis"]
    none = ql.site_load_quantiles(None, idx, TZ, None, default_daily_wh=12_000)
    assert not none.from_model and none.p10 is None and none.p90 is None
    assert none.p50.sum() * 0.25 == pytest.approx(12_000)
    assert "no band" in none.basis


def test_bad_history_nan_gaps_negative_and_text_are_ignored(year):
    w, site = year
    idx = day_index(w, 30)
    hist = site[site.index < idx[0]].astype(object)
    bad = hist.copy()
    rng = np.random.default_rng(2)
    pos = rng.choice(len(bad), 300, replace=False)
    bad.iloc[pos[:100]] = np.nan
    bad.iloc[pos[100:200]] = -5000.0
    bad.iloc[pos[200:250]] = "garbage"
    bad.iloc[pos[250:]] = np.inf
    gap = (bad.index >= idx[0] - pd.Timedelta("12D")) & (bad.index < idx[0] - pd.Timedelta("10D"))
    bad = bad[~gap]  # two days missing altogether
    q = ql.site_load_quantiles(bad, idx, TZ, w["temp_air"])
    assert q.from_model
    p = np.column_stack([q.p10, q.p50, q.p90])
    assert np.isfinite(p).all() and (p >= 0).all() and (np.diff(p, axis=1) >= 0).all()
    # dropping the bad samples ourselves gives the same forecast: they were ignored, not used
    clean = pd.to_numeric(bad, errors="coerce")
    clean = clean[np.isfinite(clean) & (clean >= 0)]
    q2 = ql.site_load_quantiles(clean, idx, TZ, w["temp_air"])
    np.testing.assert_allclose(q2.p50, q.p50)


def test_training_is_cached_per_local_day():
    """A re-forecast later the same day reuses the day's model, though the history read
    slides with the clock (as the store query does); the next day trains anew."""
    w = synthetic_weather(start="2025-03-01", days=75, seed=9)
    site = synthetic_site(w, homes=10, seed=10)
    temp = w["temp_air"]

    def forecast(t0: pd.Timestamp):
        idx = pd.date_range(t0, periods=48, freq=STEP)
        hist = site[(site.index < t0) & (site.index >= t0 - pd.Timedelta("72D"))]  # a sliding window
        return ql.site_load_quantiles(hist, idx, TZ, temp)

    t0 = w.index[0] + pd.Timedelta(days=73)  # a local midnight
    before = ql.fits
    assert forecast(t0).from_model
    assert ql.fits == before + 1
    forecast(t0 + pd.Timedelta("3h"))  # same local day, three more hours of history
    assert ql.fits == before + 1
    forecast(t0 + pd.Timedelta("1D"))
    assert ql.fits == before + 2


def test_many_homes_share_one_model_and_scale_per_home():
    w = synthetic_weather(start="2025-07-01", days=24, seed=7)
    homes = synthetic_homes(w, 60, seed=8)
    homes["h001"] = homes["h001"] * 5.0  # one big home
    idx = pd.date_range(w.index[-96], periods=96, freq=STEP)
    hist = homes[homes.index < idx[0]]
    q = ql.home_load_quantiles(hist, idx, TZ, w["temp_air"], train_homes=8)
    assert list(q.p50.columns) == list(homes.columns) and len(q.p50) == 96
    assert (q.p10.to_numpy() <= q.p50.to_numpy()).all() and (q.p50.to_numpy() <= q.p90.to_numpy()).all()
    ratio = q.p50["h001"].sum() / q.p50.drop(columns="h001").sum().median()
    real = hist["h001"].mean() / hist.drop(columns="h001").mean().median()
    assert ratio == pytest.approx(real, rel=0.35)
    assert "8 of 60 homes" in q.basis
