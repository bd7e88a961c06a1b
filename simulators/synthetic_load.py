"""A synthetic year of weather-driven household load (pure, seeded, vectorised).

For training and evaluating load forecasts where no measured year exists:

* temperature [°C]: seasonal cycle (Tokyo-like: ~6 °C late January, ~27 °C early August),
  a diurnal cycle (minimum ~05:00, maximum ~14:00 local) and a day-to-day weather anomaly
  (AR(1), σ 3 °C, ρ 0.7 per day), interpolated smoothly across each day;
* a temperature *forecast*: the truth plus an AR(1) error (σ ``forecast_sigma_c``), what a
  forecaster would actually have had;
* load per home [W] = scale × (base shape of the local hour for the day type (weekday,
  Saturday, Sunday/public holiday via ``jpholiday``) + heating ``k_heat`` × (16 °C − T)⁺ +
  cooling ``k_cool`` × (T − 24 °C)⁺, both weighted by occupancy) × multiplicative noise:
  a per-home AR(1) in log space per slot (σ ``noise_sigma``) and a per-home daily factor.

Nothing here reads a clock or the network; the same arguments give the same numbers.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from vpp.forecast.load import HOLIDAY, SATURDAY, day_type

#: Relative base load per local hour 0..23 by day type (weekday / Saturday / holiday).
BASE_SHAPE = {
    0: np.array([.50, .45, .42, .42, .44, .55, .95, 1.25, 1.00, .70, .60, .60,
                 .65, .60, .58, .62, .80, 1.15, 1.55, 1.70, 1.55, 1.30, .95, .65]),
    SATURDAY: np.array([.55, .48, .44, .43, .44, .50, .70, .95, 1.10, 1.05, 1.00, 1.05,
                        1.10, 1.00, .95, .95, 1.05, 1.25, 1.55, 1.65, 1.50, 1.30, 1.00, .70]),
    HOLIDAY: np.array([.58, .50, .45, .44, .44, .48, .60, .80, 1.00, 1.10, 1.10, 1.15,
                       1.20, 1.10, 1.00, 1.00, 1.05, 1.25, 1.50, 1.60, 1.45, 1.25, .95, .70]),
}
#: Occupancy per local hour (weights heating/cooling: nobody heats an empty house at noon).
OCCUPANCY = np.array([.7, .7, .7, .7, .7, .8, 1., 1., .6, .4, .4, .4,
                      .5, .4, .4, .5, .7, 1., 1., 1., 1., 1., .9, .8])
HEAT_BELOW_C, COOL_ABOVE_C = 16.0, 24.0


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], rho: float, sigma: float) -> np.ndarray:
    """Stationary AR(1) along the last axis with marginal std ``sigma``."""
    e = rng.normal(0.0, sigma * np.sqrt(1 - rho**2), shape)
    out = np.empty(shape)
    out[..., 0] = rng.normal(0.0, sigma, shape[:-1])
    for t in range(1, shape[-1]):
        out[..., t] = rho * out[..., t - 1] + e[..., t]
    return out


def synthetic_weather(start: str = "2025-01-01", days: int = 365, slot_s: int = 900, *, seed: int = 0,
                      tz: str = "Asia/Tokyo", forecast_sigma_c: float = 1.5) -> pd.DataFrame:
    """Temperature per slot: columns ``temp_air`` (truth) and ``temp_forecast`` [°C].

    Index: slot starts (UTC) from local midnight of ``start`` for ``days`` days."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(pd.Timestamp(start, tz=tz), periods=days * 86400 // slot_s,
                          freq=pd.Timedelta(seconds=slot_s)).tz_convert("UTC")
    local = index.tz_convert(tz)
    doy = local.day_of_year.to_numpy() + (local.hour.to_numpy() + local.minute.to_numpy() / 60) / 24
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60
    seasonal = 16.5 - 10.5 * np.cos(2 * np.pi * (doy - 25) / 365.25)
    diurnal = -4.0 * np.cos(2 * np.pi * (hour - 2.0) / 24)  # min ~02-05 h, max ~14 h
    daily = _ar1(rng, (days + 1,), 0.7, 3.0)
    t_days = (np.arange(len(index)) * slot_s / 86400.0)
    anomaly = np.interp(t_days, np.arange(days + 1), daily)  # smooth from day to day
    truth = seasonal + diurnal + anomaly
    fc_err = _ar1(rng, (len(index),), 0.98, forecast_sigma_c) if forecast_sigma_c > 0 else 0.0
    return pd.DataFrame({"temp_air": truth, "temp_forecast": truth + fc_err}, index=index)


def synthetic_homes(weather: pd.DataFrame, homes: int = 1, *, seed: int = 1, tz: str = "Asia/Tokyo",
                    daily_kwh: float = 10.0, k_heat_w_per_k: float = 70.0, k_cool_w_per_k: float = 110.0,
                    noise_sigma: float = 0.35, dtype: type = np.float32) -> pd.DataFrame:
    """Load [W] per home (columns ``h000``, ``h001``, …) on the index of ``weather``
    (:func:`synthetic_weather`), driven by its true ``temp_air``.

    ``daily_kwh`` is a typical home's base (non-HVAC) energy per day; homes differ by a
    log-normal scale (σ 0.35). The returned frame is ``homes × len(weather)`` values of
    ``dtype`` (float32: a town-sized year stays small)."""
    rng = np.random.default_rng(seed)
    index = pd.DatetimeIndex(weather.index)
    local = index.tz_convert(tz)
    n = len(index)
    slot_s = (index[1] - index[0]).total_seconds() if n > 1 else 900.0
    hour = local.hour.to_numpy()
    days = local.normalize().tz_localize(None)
    uniq, inv = np.unique(days.to_numpy(), return_inverse=True)
    dtypes = day_type(pd.DatetimeIndex(uniq))[inv]
    shapes = np.vstack([BASE_SHAPE[k] for k in (0, SATURDAY, HOLIDAY)])
    base = shapes[dtypes, hour] / shapes.mean() * daily_kwh * 1000 / 24  # [W]
    temp = weather["temp_air"].to_numpy(dtype=float)
    hvac = OCCUPANCY[hour] * (k_heat_w_per_k * np.clip(HEAT_BELOW_C - temp, 0, None)
                              + k_cool_w_per_k * np.clip(temp - COOL_ABOVE_C, 0, None))
    mean = (base + hvac)[None, :]
    scale = rng.lognormal(0.0, 0.35, (homes, 1))
    rho = float(np.exp(-slot_s / 3600.0))  # noise decorrelates over ~an hour
    noise = _ar1(rng, (homes, n), rho, noise_sigma)
    day_factor = rng.normal(0.0, 0.12, (homes, len(uniq)))[:, inv]
    w = scale * mean * np.exp(noise + day_factor - 0.5 * (noise_sigma**2 + 0.12**2))
    cols = [f"h{i:03d}" for i in range(homes)]
    return pd.DataFrame(w.T.astype(dtype), index=index, columns=cols)


def synthetic_site(weather: pd.DataFrame, homes: int = 40, *, seed: int = 2, tz: str = "Asia/Tokyo",
                   common_sigma: float = 0.06) -> pd.Series:
    """Site load [W]: the sum of ``homes`` synthetic homes times a site-wide AR(1) factor
    (σ ``common_sigma``: everyone's evening starts late on the same rainy day)."""
    h = synthetic_homes(weather, homes, seed=seed, tz=tz, dtype=np.float64).sum(axis=1).to_numpy()
    rng = np.random.default_rng(seed + 1000)
    common = _ar1(rng, (len(h),), 0.995, common_sigma)
    return pd.Series(h * np.exp(common), index=weather.index, name="load_w")
