import numpy as np
import pandas as pd
import pytest

from vpp.config import PvArray, Site
from vpp.forecast.pv import BiasCorrector, cloud_cover_to_ghi, forecast_pv

SITE = Site(name="sendai", latitude=38.33, longitude=140.85, altitude=60)
SOUTH = PvArray(id="south", kwp=5.0, tilt=30, azimuth=180)
NORTH = PvArray(id="north", kwp=5.0, tilt=30, azimuth=0)


def day_index(day="2026-06-21", freq="15min"):
    # local day in Japan, expressed in UTC
    return pd.date_range(pd.Timestamp(day, tz="Asia/Tokyo"), periods=int(pd.Timedelta("1D") / pd.Timedelta(freq)),
                         freq=freq).tz_convert("UTC")


def weather(idx, **cols):
    base = {"cloud_cover": 0.0, "temp_air": 20.0, "wind_speed": 1.0}
    base.update(cols)
    return pd.DataFrame(base, index=idx)


def test_clear_day_shape_and_magnitude():
    idx = day_index()
    out = forecast_pv([SOUTH], SITE, weather(idx))
    p = out["south"]
    assert list(out.columns) == ["south"] and out.index.equals(idx)
    local = p.tz_convert("Asia/Tokyo")
    assert (local.between_time("20:00", "03:00") == 0).all()
    # clear June noon on 5 kWp with 14 % losses: roughly 3-4.5 kW AC
    assert 3000 < local.between_time("11:00", "13:00").max() < 4500
    assert p.idxmax().tz_convert("Asia/Tokyo").hour in (10, 11, 12)
    daily_kwh = p.sum() * 0.25 / 1000
    assert 25 < daily_kwh < 40


def test_vectorised_columns_match_single_array_runs():
    idx = day_index()
    w = weather(idx, cloud_cover=np.linspace(0, 100, len(idx)))
    arrays = [SOUTH, NORTH, PvArray(id="flat", kwp=2, tilt=0, temperature_model="insulated_back_glass_polymer")]
    both = forecast_pv(arrays, SITE, w)
    for a in arrays:
        pd.testing.assert_series_equal(both[a.id], forecast_pv([a], SITE, w)[a.id])


def test_south_beats_north_in_winter_and_scales_with_kwp():
    idx = day_index("2026-12-21")
    out = forecast_pv([SOUTH, NORTH, PvArray(id="big", kwp=10, tilt=30, azimuth=180)], SITE, weather(idx))
    assert out["south"].sum() > 2 * out["north"].sum()
    np.testing.assert_allclose(out["big"], 2 * out["south"], rtol=1e-9)


def test_clouds_heat_and_ghi_column_reduce_output():
    idx = day_index()
    clear = forecast_pv([SOUTH], SITE, weather(idx))["south"].sum()
    overcast = forecast_pv([SOUTH], SITE, weather(idx, cloud_cover=100.0))["south"].sum()
    hot = forecast_pv([SOUTH], SITE, weather(idx, temp_air=38.0))["south"].sum()
    dark = forecast_pv([SOUTH], SITE, weather(idx, ghi=0.0))["south"].sum()
    assert overcast < 0.4 * clear
    assert hot < clear
    assert dark == 0.0


def test_ghi_given_takes_precedence_over_cloud_cover():
    idx = day_index()
    with_ghi = forecast_pv([SOUTH], SITE, weather(idx, ghi=200.0, cloud_cover=0.0))["south"]
    with_ghi_cc = forecast_pv([SOUTH], SITE, weather(idx, ghi=200.0, cloud_cover=100.0))["south"]
    pd.testing.assert_series_equal(with_ghi, with_ghi_cc)


def test_empty_inputs():
    idx = day_index()
    assert forecast_pv([], SITE, weather(idx)).shape == (len(idx), 0)
    assert forecast_pv([SOUTH], SITE, weather(idx[:0])).shape == (0, 1)


@pytest.mark.parametrize("kind", ["scalar", "array", "series"])
def test_kasten_czeplak(kind):
    cs, cc = 800.0, 100.0
    if kind == "array":
        cs, cc = np.array([800.0, 800.0]), np.array([100.0, 0.0])
    elif kind == "series":
        cs, cc = pd.Series([800.0, 800.0]), pd.Series([100.0, 0.0])
    out = np.atleast_1d(cloud_cover_to_ghi(cs, cc))
    assert out[0] == pytest.approx(200.0)
    if kind != "scalar":
        assert out[1] == pytest.approx(800.0)


def test_bias_corrector_fits_ratio_ignoring_night():
    idx = pd.date_range("2026-06-01", periods=14 * 96, freq="15min", tz="UTC")
    fc = forecast_pv([SOUTH], SITE, pd.DataFrame({"cloud_cover": 20.0}, index=idx))["south"]
    measured = 0.8 * fc
    measured[fc == 0] = 0.0
    bc = BiasCorrector().fit(measured, fc)
    assert bc.overall == pytest.approx(0.8)
    assert all(v == pytest.approx(0.8) for v in bc.by_hour.values())
    corrected = bc.apply(fc.to_frame())
    np.testing.assert_allclose(corrected["south"], measured, atol=1e-6)


def test_bias_corrector_hourly_clamped_and_unfitted():
    idx = pd.date_range("2026-06-01", periods=7 * 24, freq="h", tz="UTC")
    fc = pd.Series(1000.0, index=idx)
    meas = pd.Series(np.where(idx.hour == 3, 100.0, 1200.0), index=idx)
    bc = BiasCorrector().fit(meas, fc)
    assert bc.by_hour[3] == 0.5  # 0.1 clamped
    assert bc.by_hour[4] == pytest.approx(1.2)
    assert BiasCorrector().fit(meas * np.nan, fc).factors(idx[:3]).tolist() == [1.0, 1.0, 1.0]
    assert BiasCorrector().fit(meas, fc * 0).overall == 1.0
