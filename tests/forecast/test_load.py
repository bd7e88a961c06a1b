import numpy as np
import pandas as pd
import pytest

from vpp.forecast.load import HOLIDAY, SATURDAY, WEEKDAY, day_type, default_profile, forecast_load

TZ = "Asia/Tokyo"


def horizon(start="2026-11-23", hours=48, freq="30min"):
    return pd.date_range(pd.Timestamp(start, tz=TZ), periods=int(hours * 3600 / pd.Timedelta(freq).total_seconds()),
                         freq=freq).tz_convert("UTC")


def history_by_type(days=28, end="2026-11-23", levels=(1000.0, 2000.0, 3000.0), freq="5min"):
    idx = pd.date_range(pd.Timestamp(end, tz=TZ) - pd.Timedelta(days=days), pd.Timestamp(end, tz=TZ),
                        freq=freq, inclusive="left")
    t = day_type(idx.tz_localize(None).normalize())
    return pd.Series(np.array(levels)[t], index=idx.tz_convert("UTC"))


def test_day_types_use_japanese_holidays():
    # 2026-11-23 Labour Thanksgiving Day (Monday), 11-24 Tuesday, 11-28 Saturday, 11-29 Sunday
    days = pd.DatetimeIndex(["2026-11-23", "2026-11-24", "2026-11-28", "2026-11-29"])
    assert day_type(days).tolist() == [HOLIDAY, WEEKDAY, SATURDAY, HOLIDAY]


def test_no_history_gives_default_profile_with_daily_energy():
    idx = horizon(freq="15min")
    out = forecast_load(None, idx, TZ, default_daily_wh=12_000)
    assert out.index.equals(idx)
    assert out.sum() * 0.25 == pytest.approx(24_000)
    local = out.tz_convert(TZ)
    assert local.between_time("18:00", "20:00").mean() > 2 * local.between_time("02:00", "04:00").mean()
    assert default_profile(48, 10_000).mean() * 24 == pytest.approx(10_000)


def test_same_day_type_is_used():
    out = forecast_load(history_by_type(), horizon(), TZ)
    local = out.tz_convert(TZ)
    np.testing.assert_allclose(local["2026-11-23"], 3000)  # holiday Monday looks like a Sunday
    np.testing.assert_allclose(local["2026-11-24"], 1000)


def test_slot_shape_is_kept_and_15min_slots_work():
    idx = pd.date_range(pd.Timestamp("2026-11-01", tz=TZ), pd.Timestamp("2026-11-23", tz=TZ), freq="15min",
                        inclusive="left")
    local = idx.tz_localize(None)
    hist = pd.Series(500 + 10 * (local.hour * 4 + local.minute // 15).to_numpy(), index=idx.tz_convert("UTC"),
                     dtype=float)
    out = forecast_load(hist, horizon(freq="15min"), TZ).tz_convert(TZ)
    slot = (out.index.hour * 4 + out.index.minute // 15).to_numpy()
    np.testing.assert_allclose(out.to_numpy(), 500 + 10 * slot)


def test_recent_days_weigh_more():
    hist = history_by_type(days=28)
    recent = hist.index >= pd.Timestamp("2026-11-16", tz=TZ)
    hist[recent] *= 2  # the last week of weekdays at 2000 W, older at 1000 W
    out = forecast_load(hist, horizon(), TZ, n_days=8, halflife_days=3).tz_convert(TZ)
    tue = out["2026-11-24"].iloc[0]
    assert 1500 < tue < 2000


def test_nan_and_negative_samples_are_ignored():
    clean = history_by_type()
    dirty = clean.copy()
    dirty.iloc[::7] = np.nan
    dirty.iloc[3::11] = -5000.0
    pd.testing.assert_series_equal(forecast_load(dirty, horizon(), TZ), forecast_load(clean, horizon(), TZ))


def test_missing_day_type_falls_back_to_other_days():
    hist = history_by_type(days=28)
    hist = hist[day_type(hist.index.tz_convert(TZ).tz_localize(None).normalize()) == WEEKDAY]
    out = forecast_load(hist, horizon("2026-11-28"), TZ)  # Saturday + Sunday, never seen
    np.testing.assert_allclose(out, 1000)


def test_future_history_is_not_used():
    hist = history_by_type(days=28, end="2026-11-30")
    hist[hist.index >= pd.Timestamp("2026-11-23", tz=TZ)] = 9999.0
    out = forecast_load(hist, horizon(), TZ)
    assert out.max() < 9999.0
