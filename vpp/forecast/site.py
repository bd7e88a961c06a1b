"""Site forecasts for the optimiser horizon: PV (bias-corrected), load and tariff per slot.

The one recipe the control loop's forecast job, ``vpp plan`` and the day-ahead bids share
(:func:`forecast_site`)::

    horizon index (current slot, optimiser.horizon_h) ─► weather (or clear sky, flagged)
      ─► PV per array ─► site PV (clipped per inverter) ─► × bias (refitted on 7 days of
         measured vs modelled PV, when a store is given)
      ─► PV p10/p90 from the bias refit's residuals (and weather ensembles), vpp.forecast.pv_quantiles
      ─► load p10/p50/p90: the quantile model on 8 weeks of site-load history and temperature
         (vpp.forecast.quantile_load), or with under 2 weeks of history the 28-day profile
         (or a default daily energy) as before
      ─► tariff per slot

:class:`Forecast` ``pv_p10_w`` / ``pv_p90_w`` / ``load_p10_w`` / ``load_p90_w`` are the 10th /
90th percentiles [W] (p50 is ``pv_w`` / ``load_w``), None when nothing tells the spread; each
carries ``series.attrs["basis"]``: how it was made, or why the fallback (e.g. too little history).

Functions take the config, the telemetry store (``query``), the weather provider and the time
explicitly; nothing here reads a clock or raises alarms. What went wrong is reported in the
returned :class:`Forecast` (``weather_fallback``, ``load_history_error``) for the caller to
alarm on.

Units: W, Wh; site load = ``grid meter (> 0 import) + PV + battery (> 0 discharge) − EV``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from vpp.config import Device, SiteConfig
from vpp.forecast.pv import BiasCorrector, forecast_pv
from vpp.forecast.prices.provider import price_provider
from vpp.forecast.pv_quantiles import MIN_RESIDUALS, PvQuantiles, ensemble_members, pv_quantiles, residual_ratios
from vpp.forecast.quantile_load import HISTORY_DAYS, site_load_quantiles, window_days
from vpp.forecast.weather import DEFAULT_TEMP_AIR, DEFAULT_WIND_SPEED, WeatherProvider, clear_sky_weather, get_weather
from vpp.slots import floor_time

log = logging.getLogger(__name__)

#: Days of site-load history the profile load forecast learns from.
LOAD_HISTORY_DAYS = 28
#: Days before today's local midnight read for the quantile load model (training days + the
#: lookback of its features).
QUANTILE_HISTORY_DAYS = window_days(HISTORY_DAYS)
#: Days of measured PV the bias correction is fitted on.
PV_BIAS_DAYS = 7


@dataclass
class Forecast:
    """Per-slot forecasts for the horizon (index = slot starts, UTC): ``pv_w``, ``load_w``
    [W], ``tariff`` (columns ``buy_per_kwh``, ``sell_per_kwh``, ``co2_kg_per_kwh``), made at
    ``made_at``. ``weather_fallback`` / ``weather_reason``: planned on clear sky and why;
    ``load_from_history``: the load came from measured history; ``load_history_error``: why
    the history could not be read ('' = it could, or there is none to read)."""

    index: pd.DatetimeIndex
    pv_w: pd.Series
    load_w: pd.Series
    tariff: pd.DataFrame
    made_at: datetime
    weather_fallback: bool = False
    weather_reason: str = ""
    load_from_history: bool = False
    load_history_error: str = ""
    pv_p10_w: pd.Series | None = None
    pv_p90_w: pd.Series | None = None
    load_p10_w: pd.Series | None = None
    load_p90_w: pd.Series | None = None
    #: the price data the tariff columns come from (:mod:`vpp.forecast.prices`)
    price_version: str = ""


def horizon_index(config: SiteConfig, now: datetime) -> pd.DatetimeIndex:
    """Slot starts of the optimiser horizon from the slot containing ``now`` (UTC)."""
    o = config.optimiser
    start = floor_time(now, o.slot_s)
    n = int(round(o.horizon_h * 3600 / o.slot_s))
    return pd.date_range(start, periods=n, freq=pd.Timedelta(seconds=o.slot_s))


def default_daily_load_wh(config: SiteConfig) -> float:
    """Daily load [Wh] assumed without history: 14 kWh per home, or a facility using 15 % of
    its import limit on average."""
    homes = {d.home for d in config.devices if d.home}
    if homes:
        return 14_000.0 * len(homes)
    return 0.15 * config.grid.import_limit_w * 24.0


def site_load_history(store: Any, config: SiteConfig, start: datetime, end: datetime,
                      every: str = "15m") -> pd.Series | None:
    """Site consumption [W] per bucket from stored telemetry:
    ``grid meter + pv + battery − ev`` (EV charging is planned separately). Buckets where any
    of these devices has no data are NaN. ``None`` without a grid meter."""
    meter = config.grid_meter()
    if meter is None:
        return None
    signs: list[tuple[Device, float]] = [(meter, 1.0)]
    signs += [(d, 1.0) for d in config.devices_of("pv")]
    signs += [(d, 1.0) for d in config.devices_of("battery")]
    signs += [(d, -1.0) for d in config.devices_of("ev_charger")]
    cols = {}
    for d, s in signs:
        df = store.query(device=d.id, fields=["power_w"], start=start, end=end, every=every)
        cols[d.id] = s * df["power_w"]
    frame = pd.concat(cols, axis=1, sort=True)  # a union of the devices' time indexes, in time order
    if frame.empty:
        return None
    return frame.sum(axis=1, min_count=frame.shape[1])


def site_pv(config: SiteConfig, by_array: pd.DataFrame) -> pd.Series:
    """Site PV [W]: arrays summed per inverter and clipped at its AC rating (``power_w``);
    arrays without an inverter are added unclipped."""
    total = pd.Series(0.0, index=by_array.index)
    groups: dict[str | None, list[str]] = {}
    for a in config.pv_arrays:
        groups.setdefault(a.inverter, []).append(a.id)
    for inv, ids in groups.items():
        p = by_array[ids].sum(axis=1)
        rating = config.device(inv).ratings.power_w if inv is not None else None
        total += p.clip(upper=rating) if rating else p
    return total


def site_pv_history(store: Any, config: SiteConfig, start: datetime, end: datetime,
                    every: str = "15m") -> pd.Series | None:
    """Measured site PV [W] per bucket (sum over inverters; NaN where one has no data)."""
    invs = config.devices_of("pv")
    if not invs:
        return None
    cols = {d.id: store.query(device=d.id, fields=["power_w"], start=start, end=end, every=every)["power_w"]
            for d in invs}
    frame = pd.concat(cols, axis=1, sort=True)
    return None if frame.empty else frame.sum(axis=1, min_count=frame.shape[1])


def pv_history_pair(config: SiteConfig, store: Any, weather: WeatherProvider | None, start: datetime,
                    days: int = PV_BIAS_DAYS) -> tuple[pd.Series, pd.Series] | None:
    """(measured, modelled) site PV [W] per slot over the ``days`` before ``start``, the model
    run on the same weather source; None without past weather (clear-sky fallback: the ratio
    would mix model bias with cloudiness) or without measured PV."""
    o = config.optimiser
    past0 = start - timedelta(days=days)
    w = get_weather(weather, config.site, past0, start, pd.Timedelta(seconds=o.slot_s))
    if w.fallback:
        return None
    model = site_pv(config, forecast_pv(config.pv_arrays, config.site, w.frame))
    measured = site_pv_history(store, config, past0, start, f"{o.slot_s}s")
    if measured is None:
        return None
    return measured.reindex(model.index), model


def fit_pv_bias(config: SiteConfig, store: Any, weather: WeatherProvider | None, start: datetime,
                previous: BiasCorrector, days: int = PV_BIAS_DAYS) -> BiasCorrector:
    """PV bias correction fitted on the ``days`` before ``start``: measured site PV vs the
    model run on the same weather source (:func:`pv_history_pair`; ``previous`` when there
    is no pair)."""
    pair = pv_history_pair(config, store, weather, start, days)
    return previous if pair is None else BiasCorrector().fit(*pair)


def pv_band(config: SiteConfig, pv: pd.Series, bias: BiasCorrector, pair: tuple[pd.Series, pd.Series] | None,
            weather: WeatherProvider | None) -> PvQuantiles:
    """PV p10/p90 [W] around the corrected forecast ``pv`` (:mod:`vpp.forecast.pv_quantiles`):
    residuals of the bias-corrected model over the bias history ``pair``, the provider's
    ensemble members, capped by the corrected clear-sky PV."""
    index = pd.DatetimeIndex(pv.index)
    ratios = residual_ratios(pair[0], bias.apply(pair[1])) if pair is not None else None
    members = []
    for m in ensemble_members(weather, index[0], index[-1] + index.freq, index.freq):
        m = m.reindex(index)
        fill = clear_sky_weather(config.site, index)
        m = m.reindex(columns=list(fill.columns)).fillna({"temp_air": DEFAULT_TEMP_AIR,
                                                          "wind_speed": DEFAULT_WIND_SPEED})
        if m[["ghi", "cloud_cover"]].isna().all(axis=1).any():
            continue  # a member without irradiance somewhere would sneak clear sky into the band
        members.append(bias.apply(site_pv(config, forecast_pv(config.pv_arrays, config.site, m))))
    if not members and (ratios is None or len(ratios) < MIN_RESIDUALS):
        return pv_quantiles(pv, ratios)  # no band (and no clear-sky run for its cap)
    clear = bias.apply(site_pv(config, forecast_pv(config.pv_arrays, config.site,
                                                   clear_sky_weather(config.site, index))))
    return pv_quantiles(pv, ratios, clear, members)


def past_temperature(config: SiteConfig, weather: WeatherProvider | None, start: datetime,
                     horizon: pd.DataFrame, days: int) -> pd.Series:
    """Air temperature [°C] per slot from ``days`` before ``start`` through the horizon
    (``horizon``: the horizon's weather frame); slots the provider cannot give are NaN."""
    freq = pd.Timedelta(seconds=config.optimiser.slot_s)
    past = get_weather(weather, config.site, start - timedelta(days=days), start, freq)
    t = pd.concat([past.frame["temp_air"], horizon["temp_air"]])
    if past.fallback and past.reason.startswith(("no weather", "weather provider failed")):
        t[:] = float("nan")  # the default 20 °C is not a measurement
    return t[~t.index.duplicated(keep="last")]


def forecast_site(config: SiteConfig, now: datetime, *, store: Any = None, weather: WeatherProvider | None = None,
                  bias: BiasCorrector | None = None) -> tuple[Forecast, BiasCorrector]:
    """Forecast PV, load and tariff for the optimiser horizon from the slot containing ``now``.

    Parameters
    ----------
    store : Store or None
        Telemetry history (``query``): load history and the PV bias refit; None = neither
        (default daily load, ``bias`` applied unchanged).
    weather : WeatherProvider or None
        None plans on clear sky (``Forecast.weather_fallback``).
    bias : BiasCorrector or None
        The correction in force; refitted when a store is given (kept if the refit fails).

    Returns
    -------
    (Forecast, BiasCorrector)
        The forecast and the bias correction now in force.
    """
    bias = bias if bias is not None else BiasCorrector()
    index = horizon_index(config, now)
    start = floor_time(now, config.optimiser.slot_s)
    w = get_weather(weather, config.site, index[0], index[-1] + index.freq, index.freq)
    pv = site_pv(config, forecast_pv(config.pv_arrays, config.site, w.frame))
    pair = None
    if store is not None and config.pv_arrays:
        try:
            pair = pv_history_pair(config, store, weather, start)
            bias = bias if pair is None else BiasCorrector().fit(*pair)
        except Exception as e:  # noqa: BLE001 - keep the previous correction
            log.warning("PV bias correction not refitted: %s", e)
        pv = bias.apply(pv)
    band = PvQuantiles(None, None, "no PV")
    if config.pv_arrays:
        try:
            band = pv_band(config, pv, bias, pair, weather)
        except Exception as e:  # noqa: BLE001 - the band is an extra; the p50 plan does not need it
            log.warning("PV quantiles not computed: %s", e)
    history, history_error = None, ""
    if store is not None:
        try:
            history = site_load_history(store, config, load_window_start(config, start), start)
        except Exception as e:  # noqa: BLE001 - a store fault must not stop planning
            history_error = str(e)
    recent = None if history is None else history[history.index >= pd.Timestamp(start - timedelta(days=LOAD_HISTORY_DAYS))]
    lq = load_forecast(config, index, start, history, recent, weather, w.frame)
    tariff = price_provider(config).energy(index)
    fc = Forecast(index, pv, lq.p50, tariff, now, w.fallback, w.reason,
                  recent is not None and bool(recent.notna().any()), history_error,
                  band.p10, band.p90, lq.p10, lq.p90, tariff.attrs.get("version", ""))
    return fc, bias


def load_window_start(config: SiteConfig, start: datetime) -> datetime:
    """Start of the load history read: QUANTILE_HISTORY_DAYS before the local midnight of
    ``start`` (fixed for the whole day, so the day's model is trained once and cached)."""
    midnight = pd.Timestamp(start).tz_convert(config.site.timezone).normalize()
    return (midnight - pd.Timedelta(days=QUANTILE_HISTORY_DAYS)).tz_convert("UTC").to_pydatetime()


def load_forecast(config: SiteConfig, index: pd.DatetimeIndex, start: datetime, history: pd.Series | None,
                  recent: pd.Series | None, weather: WeatherProvider | None, horizon_weather: pd.DataFrame):
    """Load p10/p50/p90 (:func:`vpp.forecast.quantile_load.site_load_quantiles`): the model on
    ``history`` when it holds enough days, else the profile on ``recent`` (the last
    LOAD_HISTORY_DAYS, exactly as before quantiles existed). Temperature is read only when
    the model will run."""
    from vpp.forecast.features import clean_history
    from vpp.forecast.quantile_load import MIN_HISTORY_DAYS, profile_quantiles, usable_days

    tz, daily = config.site.timezone, default_daily_load_wh(config)
    step = pd.Timedelta(seconds=config.optimiser.slot_s)
    temp = None
    if history is not None and usable_days(clean_history(history, step), step, tz) >= MIN_HISTORY_DAYS:
        try:
            temp = past_temperature(config, weather, start, horizon_weather, QUANTILE_HISTORY_DAYS)
        except Exception as e:  # noqa: BLE001 - the model still has calendar and lags
            log.warning("temperature history unavailable for the load model: %s", e)
    try:
        return site_load_quantiles(history, index, tz, temp, default_daily_wh=daily, profile_history=recent)
    except Exception as e:  # noqa: BLE001 - a model failure falls back to the profile, loudly
        log.warning("quantile load model failed (%s); profile forecast", e)
        return profile_quantiles(recent, index, tz, daily, f"profile fallback: quantile model failed: {e}")
