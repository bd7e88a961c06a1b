import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from vpp.config import Site
from vpp.forecast.pv import clear_sky_ghi
from vpp.forecast.weather import (
    COLUMNS, CsvWeatherProvider, OpenMeteoProvider, WeatherProvider, get_weather, parse_open_meteo, to_slots,
)

DATA = Path(__file__).parent / "data"
FIXTURE = json.loads((DATA / "open_meteo_sendai_20260620.json").read_text())
SITE = Site(name="sendai", latitude=38.3125, longitude=140.875, altitude=58)
START = pd.Timestamp("2026-06-20T15:00Z")  # 2026-06-21 00:00 JST
END = START + pd.Timedelta("24h")


def test_parse_labels_radiation_at_hour_midpoint_in_utc():
    df = parse_open_meteo(FIXTURE)
    assert str(df.index.tz) == "UTC"
    # "2026-06-20T12:00" JST is the 11-12 JST mean = 02:00-03:00 UTC, labelled 02:30 UTC
    assert df.loc[pd.Timestamp("2026-06-20T02:30Z"), "ghi"] == 957.0
    # instantaneous values stay on the hour: 2026-06-20T00:00 JST = 2026-06-19T15:00Z
    first = FIXTURE["hourly"]
    assert df.loc[pd.Timestamp("2026-06-19T15:00Z"), "temp_air"] == first["temperature_2m"][0]
    assert df.loc[pd.Timestamp("2026-06-19T15:00Z"), "cloud_cover"] == first["cloud_cover"][0]
    assert set(df.columns) == set(COLUMNS)


def test_parse_converts_kmh_and_rejects_garbage():
    data = json.loads(json.dumps(FIXTURE))
    data["hourly_units"]["wind_speed_10m"] = "km/h"
    data["hourly"]["wind_speed_10m"] = [36.0] * len(data["hourly"]["time"])
    assert parse_open_meteo(data)["wind_speed"].dropna().eq(10.0).all()
    with pytest.raises(ValueError):
        parse_open_meteo({"error": True, "reason": "bad"})


def mock_client(status=200, seen=None):
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if status != 200:
            return httpx.Response(status, json={"error": True, "reason": "Internal"})
        return httpx.Response(200, json=FIXTURE)
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_http_path_with_recorded_answer():
    seen: list[httpx.Request] = []
    provider = OpenMeteoProvider(38.3125, 140.875, "Asia/Tokyo", client=mock_client(seen=seen))
    assert isinstance(provider, WeatherProvider)
    df = provider.fetch(START, END, "15min")
    q = seen[0].url.params
    assert seen[0].url.host == "api.open-meteo.com"
    assert q["hourly"] == "shortwave_radiation,cloud_cover,temperature_2m,wind_speed_10m"
    assert q["timezone"] == "Asia/Tokyo" and q["wind_speed_unit"] == "ms"
    assert q["start_date"] <= "2026-06-21" <= q["end_date"]
    assert len(df) == 96 and df.index[0] == START and df.index.freq == pd.Timedelta("15min")
    assert not df.isna().any().any()  # one null temperature is bridged
    # day 2 of the fixture is overcast: the mid-day GHI is far below clear sky
    cs = clear_sky_ghi(SITE, df.index + pd.Timedelta("7min 30s")).to_numpy()
    noon = df.index.tz_convert("Asia/Tokyo").hour == 12
    assert (df["ghi"].to_numpy()[noon] < 0.5 * cs[noon]).all()
    assert df["ghi"].min() >= 0


def test_http_failure_falls_back_to_clear_sky_with_flag():
    provider = OpenMeteoProvider(38.3125, 140.875, "Asia/Tokyo", client=mock_client(status=500))
    w = get_weather(provider, SITE, START, END, "30min")
    assert w.fallback and "HTTPStatusError" in w.reason
    assert len(w.frame) == 48 and w.frame["ghi"].max() > 800
    assert (w.frame["cloud_cover"] == 0).all()


def test_good_weather_is_not_flagged():
    provider = OpenMeteoProvider(38.3125, 140.875, "Asia/Tokyo", client=mock_client())
    w = get_weather(provider, SITE, START, END, "30min")
    assert not w.fallback and w.reason == ""


def test_partial_coverage_is_filled_and_flagged():
    provider = OpenMeteoProvider(38.3125, 140.875, "Asia/Tokyo", client=mock_client())
    # the fixture ends 2026-06-22 24:00 JST = 2026-06-22T15:00Z; ask 12 h beyond it
    start = pd.Timestamp("2026-06-22T03:00Z")
    w = get_weather(provider, SITE, start, start + pd.Timedelta("24h"), "1h")
    assert w.fallback and "slots without irradiance" in w.reason
    assert not w.frame[["ghi", "temp_air", "wind_speed"]].isna().any().any()


def test_csv_provider(tmp_path):
    idx = pd.date_range("2026-06-20T15:00Z", periods=24, freq="1h")
    pd.DataFrame({"ghi": np.arange(24) * 10.0, "temp_air": 20.0}, index=idx.rename("time")).to_csv(tmp_path / "w.csv")
    df = CsvWeatherProvider(tmp_path / "w.csv").fetch(idx[0], idx[-1], "30min")
    # hourly means at hour midpoints; a 30-min slot's midpoint is a quarter hour off
    assert df["ghi"].iloc[0] == pytest.approx(0.0)  # before the first midpoint: held
    assert df["ghi"].iloc[1] == pytest.approx(2.5)
    assert df["ghi"].iloc[2] == pytest.approx(7.5)
    assert df["cloud_cover"].isna().all() and (df["temp_air"] == 20).all()


def test_to_slots_leaves_long_gaps_empty():
    t = pd.DatetimeIndex(["2026-01-01T00:00Z", "2026-01-01T01:00Z", "2026-01-01T09:00Z"])
    pts = pd.DataFrame({"temp_air": [1.0, 2.0, 9.0]}, index=t)
    idx = pd.date_range("2026-01-01T00:00Z", periods=10, freq="1h")
    out = to_slots(pts, idx)["temp_air"]
    assert out.iloc[0] == pytest.approx(1.5)
    assert out.iloc[3:9].isna().all() and out.iloc[9] == 9.0  # held 30 min past the last point
    assert to_slots(pts, pd.date_range("2026-01-01T10:00Z", periods=2, freq="1h"))["temp_air"].isna().all()
