"""PV p10/p90 from the bias residuals and weather ensembles; the site forecast's quantile
fields; the outage plan's PV p10."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drivers.protocols import DeviceKind, Snapshot
from vpp.config import read_config, updated
from vpp.control.autonomy import P10_CLEAR_SKY_INDEX, outage_inputs, p10_pv_w
from vpp.forecast.pv import forecast_pv
from vpp.forecast.pv_quantiles import pv_quantiles, residual_ratios
from vpp.forecast.site import forecast_site, site_pv
from vpp.forecast.weather import CsvWeatherProvider, get_weather
from vpp.slots import floor_time

CONFIG = Path(__file__).parents[2] / "deploy" / "examples" / "community-centre.yaml"
T0 = datetime(2026, 6, 21, 3, 7, tzinfo=timezone.utc)  # 12:07 JST


def day_curve(n=48):
    idx = pd.date_range("2026-06-20T15:00Z", periods=n, freq="30min")
    return pd.Series(np.clip(np.sin(np.linspace(-np.pi / 2, 3 * np.pi / 2, n)), 0, None) * 10_000, index=idx)


def test_residual_band_is_multiplicative_ordered_and_closed_at_night():
    p50 = day_curve()
    rng = np.random.default_rng(0)
    ratios = rng.uniform(0.4, 1.1, 200)
    clear = p50 * 1.05
    q = pv_quantiles(p50, ratios, clear)
    lo, hi = q.p10.to_numpy(), q.p90.to_numpy()
    assert (lo <= p50.to_numpy()).all() and (p50.to_numpy() <= hi).all() and (lo >= 0).all()
    night = p50.to_numpy() == 0
    assert night.any() and (lo[night] == 0).all() and (hi[night] == 0).all()
    day = p50.to_numpy() > 1000
    np.testing.assert_allclose(lo[day] / p50.to_numpy()[day], np.quantile(ratios, 0.1), rtol=1e-9)
    assert (hi <= np.maximum(clear.to_numpy(), p50.to_numpy()) + 1e-9).all()  # capped by clear sky
    assert "residuals of 200 daylight slots" in q.p10.attrs["basis"]


def test_too_few_residuals_and_no_ensemble_give_no_band():
    q = pv_quantiles(day_curve(), np.array([0.9] * 10))
    assert q.p10 is None and q.p90 is None and "10 residual slots < 40" in q.basis


def test_ensemble_members_widen_the_band():
    p50 = day_curve()
    members = [p50 * f for f in (0.3, 0.6, 1.0, 1.2)]
    q = pv_quantiles(p50, None, None, members)
    day = p50 > 1000
    assert (q.p10[day] < 0.6 * p50[day]).all() and (q.p90[day] > 1.05 * p50[day]).all()
    assert "4 weather ensemble members" in q.basis


def test_residual_ratios_ignore_dawn_negative_and_nan():
    f = pd.Series([0.0, 10.0, 1000.0, 2000.0, 2000.0])
    m = pd.Series([5.0, 10.0, 500.0, -1.0, np.nan])
    assert residual_ratios(m, f).tolist() == [0.5]


def test_p10_pv_uses_the_forecast_p10_and_the_stand_in_elsewhere():
    config = read_config(CONFIG)
    idx = pd.date_range("2026-06-21T00:00Z", periods=8, freq="1h")
    stand_in = p10_pv_w(config, idx[0], 0, index=idx)
    real = pd.Series(1234.0, index=idx[:4])
    got = p10_pv_w(config, idx[0], 0, index=idx, p10=real)
    assert (got[:4] == 1234.0).all()
    pd.testing.assert_series_equal(got[4:], stand_in[4:], check_names=False)
    assert stand_in.max() > 0  # the stand-in is clear-sky × P10_CLEAR_SKY_INDEX, not zero
    assert P10_CLEAR_SKY_INDEX == 0.15
    out = outage_inputs(config, list(idx), pv_p10=real)
    assert out.pv_w[:4].tolist() == [1234.0] * 4


@pytest.fixture(scope="module")
def forecast_with_history(tmp_path_factory):
    """forecast_site on a store holding 16 days of telemetry: PV at 80 % ± clouds of the
    model, a site load with a daily shape and noise."""
    from vpp.storage import open_store

    tmp = tmp_path_factory.mktemp("fcq")
    config = updated(read_config(CONFIG), optimiser={"horizon_h": 24, "slot_s": 1800},
                     storage={"path": str(tmp / "vpp.sqlite")})
    idx = pd.date_range(T0 - timedelta(days=70), T0 + timedelta(days=2), freq="1h").floor("h")
    cc = 50 + 40 * np.sin(np.arange(len(idx)) / 5.0)
    temp = 22 + 4 * np.sin(np.arange(len(idx)) * 2 * np.pi / 24)
    pd.DataFrame({"cloud_cover": cc, "temp_air": temp}, index=idx.rename("time")).to_csv(tmp / "w.csv")
    weather = CsvWeatherProvider(tmp / "w.csv")
    slots = pd.date_range(floor_time(T0, 1800) - timedelta(days=16), floor_time(T0, 1800), freq="30min",
                          inclusive="left")
    w = get_weather(weather, config.site, slots[0], slots[-1] + slots.freq, slots.freq)
    model = site_pv(config, forecast_pv(config.pv_arrays, config.site, w.frame))
    rng = np.random.default_rng(0)
    hours = slots.tz_convert("Asia/Tokyo").hour.to_numpy()
    load = 2000 + 1500 * np.exp(-((hours - 19) ** 2) / 8) + rng.normal(0, 200, len(slots))
    snaps = []
    for t, p, ld in zip(slots, model.to_numpy(), load):
        ts = t.to_pydatetime()
        pv, ld = float(0.8 * p * rng.uniform(0.6, 1.2)), float(ld)  # the store keeps Python floats only
        snaps += [Snapshot("pv1", DeviceKind.PV, ts, {"power_w": pv}),
                  Snapshot("bat1", DeviceKind.BATTERY, ts, {"power_w": 0.0, "soc": 0.5}),
                  Snapshot("meter1", DeviceKind.METER, ts, {"power_w": ld - pv})]
        snaps += [Snapshot(f"ev{i}", DeviceKind.EV_CHARGER, ts, {"power_w": 0.0}) for i in range(1, 5)]
    with open_store(config.storage, site=config.site.name) as store:
        res = store.write(snaps)
        assert res.written == len(snaps), res.rejected[:3]
        fc, _ = forecast_site(config, T0, store=store, weather=weather)
        short, _ = forecast_site(config, T0, store=None, weather=weather)
    return fc, short


def test_forecast_site_fills_the_four_quantile_fields(forecast_with_history):
    fc, _ = forecast_with_history
    for lo, mid, hi in ((fc.pv_p10_w, fc.pv_w, fc.pv_p90_w), (fc.load_p10_w, fc.load_w, fc.load_p90_w)):
        assert lo is not None and hi is not None
        assert lo.index.equals(fc.index) and hi.index.equals(fc.index)
        assert (lo <= mid + 1e-9).all() and (mid <= hi + 1e-9).all() and (lo >= 0).all()
    day = fc.pv_w > 1000
    assert (fc.pv_p10_w[day] < fc.pv_w[day]).all()
    assert (fc.pv_p90_w[day] > fc.pv_w[day]).mean() > 0.5  # above, except where clear sky caps it
    assert "quantile model" in fc.load_p10_w.attrs["basis"]  # 16 days ≥ 14
    assert fc.load_from_history
    evening = fc.load_w[fc.index.tz_convert("Asia/Tokyo").hour == 19].mean()
    night = fc.load_w[fc.index.tz_convert("Asia/Tokyo").hour == 3].mean()
    assert evening > night + 800  # it learned the evening peak


def test_forecast_site_without_history_keeps_todays_forecast(forecast_with_history):
    _, fc = forecast_with_history
    assert fc.load_p10_w is None and fc.load_p90_w is None and not fc.load_from_history
    assert fc.pv_p10_w is None  # no measured PV, no ensemble: no band; consumers use their fallbacks


async def test_the_forecast_and_its_model_fit_run_off_the_event_loop(tmp_path, monkeypatch):
    """The controller's async forecast refresh runs forecast_site (where the quantile model
    is fitted, once per local day) in a worker thread: the event loop thread never fits."""
    import threading

    import vpp.control.planning as planning
    from vpp.control.loop import Controller

    class Clock:
        def now(self):
            return T0

    threads = []
    real = planning.forecast_site

    def recording(*a, **k):
        threads.append(threading.current_thread())
        return real(*a, **k)

    monkeypatch.setattr(planning, "forecast_site", recording)
    config = updated(read_config(CONFIG), optimiser={"horizon_h": 24, "slot_s": 1800})
    ctl = Controller(config, clock=Clock())
    fc = await ctl.refresh_forecast()
    assert fc is not None and fc.load_w.index.equals(fc.index)
    assert threads and threads[0] is not threading.main_thread()


def test_a_provider_with_ensembles_gives_a_pv_band_without_history(tmp_path):
    idx = pd.date_range(T0 - timedelta(days=1), T0 + timedelta(days=2), freq="1h").floor("h")
    pd.DataFrame({"cloud_cover": 40.0, "temp_air": 22.0}, index=idx.rename("time")).to_csv(tmp_path / "w.csv")

    class Ensemble(CsvWeatherProvider):
        def fetch_ensemble(self, start, end, freq):
            base = self.fetch(start, end, freq)
            return [base.assign(cloud_cover=c) for c in (5.0, 40.0, 70.0, 95.0)]

    config = updated(read_config(CONFIG), optimiser={"horizon_h": 24, "slot_s": 1800})
    fc, _ = forecast_site(config, T0, weather=Ensemble(tmp_path / "w.csv"))
    assert fc.pv_p10_w is not None and "4 weather ensemble members" in fc.pv_p10_w.attrs["basis"]
    day = fc.pv_w > 1000
    assert (fc.pv_p10_w[day] < 0.9 * fc.pv_w[day]).all()  # the 70-95 % cloud members pull it down
    assert (fc.pv_p90_w >= fc.pv_w).all() and (fc.pv_p90_w[day] > fc.pv_w[day]).mean() > 0.5
