"""Site forecasts for the optimiser horizon: PV (bias-corrected), load and tariff per slot.

The one recipe the control loop's forecast job, ``vpp plan`` and the day-ahead bids share
(:func:`forecast_site`)::

    horizon index (current slot, optimiser.horizon_h) ─► weather (or clear sky, flagged)
      ─► PV per array ─► site PV (clipped per inverter) ─► × bias (refitted on 7 days of
         measured vs modelled PV, when a store is given)
      ─► load from 28 days of site-load history (or a default daily energy)
      ─► tariff per slot

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
from vpp.forecast.load import forecast_load
from vpp.forecast.pv import BiasCorrector, forecast_pv
from vpp.forecast.prices.provider import price_provider
from vpp.forecast.weather import WeatherProvider, get_weather
from vpp.slots import floor_time

log = logging.getLogger(__name__)

#: Days of site-load history the load forecast learns from.
LOAD_HISTORY_DAYS = 28
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


def fit_pv_bias(config: SiteConfig, store: Any, weather: WeatherProvider | None, start: datetime,
                previous: BiasCorrector, days: int = PV_BIAS_DAYS) -> BiasCorrector:
    """PV bias correction fitted on the ``days`` before ``start``: measured site PV vs the
    model run on the same weather source. Without past weather (clear-sky fallback) the
    ratio would mix model bias with cloudiness, so ``previous`` is returned (likewise
    without measured PV)."""
    o = config.optimiser
    past0 = start - timedelta(days=days)
    w = get_weather(weather, config.site, past0, start, pd.Timedelta(seconds=o.slot_s))
    if w.fallback:
        return previous
    model = site_pv(config, forecast_pv(config.pv_arrays, config.site, w.frame))
    measured = site_pv_history(store, config, past0, start, f"{o.slot_s}s")
    if measured is None:
        return previous
    return BiasCorrector().fit(measured.reindex(model.index), model)


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
    if store is not None and config.pv_arrays:
        try:
            bias = fit_pv_bias(config, store, weather, start, bias)
        except Exception as e:  # noqa: BLE001 - keep the previous correction
            log.warning("PV bias correction not refitted: %s", e)
        pv = bias.apply(pv)
    history, history_error = None, ""
    if store is not None:
        try:
            history = site_load_history(store, config, start - timedelta(days=LOAD_HISTORY_DAYS), start)
        except Exception as e:  # noqa: BLE001 - a store fault must not stop planning
            history_error = str(e)
    load = forecast_load(history, index, config.site.timezone, default_daily_wh=default_daily_load_wh(config))
    tariff = price_provider(config).energy(index)
    fc = Forecast(index, pv, load, tariff, now, w.fallback, w.reason,
                  history is not None and bool(history.notna().any()), history_error,
                  tariff.attrs.get("version", ""))
    return fc, bias
