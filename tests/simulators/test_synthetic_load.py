"""The synthetic weather-driven load year: seeded, weather-driven, day types."""
from __future__ import annotations

import numpy as np
import pandas as pd

from simulators.synthetic_load import synthetic_homes, synthetic_site, synthetic_weather


def test_same_seed_same_year_and_forecast_differs_from_truth():
    a, b = synthetic_weather(days=20, seed=1), synthetic_weather(days=20, seed=1)
    pd.testing.assert_frame_equal(a, b)
    err = a["temp_forecast"] - a["temp_air"]
    assert 0.5 < err.std() < 3.0
    assert len(a) == 20 * 96 and a.index.tz is not None


def test_cold_days_draw_more_than_mild_days():
    """Heating below 16 °C: a home's load rises with the cold, noise aside."""
    w = synthetic_weather(days=60, seed=2)
    mild, cold = w.copy(), w.copy()
    mild["temp_air"], cold["temp_air"] = 18.0, 2.0
    m = synthetic_homes(mild, 20, seed=3).to_numpy().mean()
    c = synthetic_homes(cold, 20, seed=3).to_numpy().mean()
    assert c > 1.5 * m


def test_weekday_and_holiday_shapes_differ_and_site_sums_homes():
    w = synthetic_weather(start="2025-04-28", days=7, seed=4)  # Golden Week: 29 Apr, 3-5 May holidays
    site = synthetic_site(w, homes=200, seed=5, common_sigma=0.0)
    local = site.index.tz_convert("Asia/Tokyo")
    hour7 = site[local.hour == 7]
    day = hour7.groupby(hour7.index.tz_convert("Asia/Tokyo").date).mean()
    workday = day[pd.Timestamp("2025-05-01").date()]
    holiday = day[pd.Timestamp("2025-05-04").date()]
    assert workday > holiday * 1.1  # weekday morning peak vs a lazy holiday morning
    assert (site > 0).all() and np.isfinite(site).all()
