"""Weather for the PV forecast: providers (CSV, Open-Meteo) and the clear-sky fallback.

Every provider returns a frame indexed by slot start (UTC) with the columns of
:data:`COLUMNS`, each value representing the mean over its slot; unknown values are NaN.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx
import numpy as np
import pandas as pd

from vpp.config import Site, SiteConfig

log = logging.getLogger(__name__)

#: Canonical weather columns and units.
COLUMNS: dict[str, str] = {
    "ghi": "global horizontal irradiance [W/m2]",
    "cloud_cover": "total cloud cover [%]",
    "temp_air": "air temperature at 2 m [°C]",
    "wind_speed": "wind speed at 10 m [m/s]",
}

#: Open-Meteo hourly variable -> our column (renamed once, here).
OPEN_METEO_VARIABLES: dict[str, str] = {
    "shortwave_radiation": "ghi",
    "cloud_cover": "cloud_cover",
    "temperature_2m": "temp_air",
    "wind_speed_10m": "wind_speed",
}
OPEN_METEO_URL = "https://api.open-meteo.com/v1/forecast"
DEFAULT_TEMP_AIR = 20.0
DEFAULT_WIND_SPEED = 1.0


@runtime_checkable
class WeatherProvider(Protocol):
    def fetch(self, start: pd.Timestamp, end: pd.Timestamp, freq: str | pd.Timedelta) -> pd.DataFrame:
        """Weather for slots ``[start, end)`` of length ``freq``; columns from :data:`COLUMNS`."""
        ...


def slot_index(start: pd.Timestamp, end: pd.Timestamp, freq: str | pd.Timedelta) -> pd.DatetimeIndex:
    """Slot starts in ``[start, end)`` in UTC."""
    start = pd.Timestamp(start).tz_convert("UTC") if pd.Timestamp(start).tzinfo else pd.Timestamp(start, tz="UTC")
    end = pd.Timestamp(end).tz_convert("UTC") if pd.Timestamp(end).tzinfo else pd.Timestamp(end, tz="UTC")
    return pd.date_range(start, end, freq=pd.Timedelta(freq), inclusive="left", name="time")


def to_slots(points: pd.DataFrame, index: pd.DatetimeIndex,
             max_gap: pd.Timedelta = pd.Timedelta("2h")) -> pd.DataFrame:
    """Linear-in-time interpolation of point values (labelled at their representative instant)
    onto the midpoints of the slots in ``index``. Slots more than ``max_gap / 2`` outside the
    data range, or inside a gap of finite values longer than ``max_gap``, get NaN."""
    step = pd.Timedelta(index.freq) if index.freq is not None else pd.Timedelta("1h")
    mids = index + step / 2
    xm = mids.as_unit("ns").asi8.astype(float)
    x = pd.DatetimeIndex(points.index).as_unit("ns").asi8.astype(float)
    out = {}
    for col in COLUMNS:
        if col not in points or len(points) == 0:
            out[col] = np.full(len(index), np.nan)
            continue
        v = points[col].to_numpy(dtype=float)
        ok = np.isfinite(v)
        if ok.sum() == 0:
            out[col] = np.full(len(index), np.nan)
            continue
        xs = x[ok]
        y = np.interp(xm, xs, v[ok])  # edge values held, but only half a gap beyond the data
        y[(xm < xs[0] - max_gap.value / 2) | (xm > xs[-1] + max_gap.value / 2)] = np.nan
        right = np.clip(np.searchsorted(xs, xm), 1, len(xs) - 1) if len(xs) > 1 else np.zeros(len(xm), int)
        gap = xs[right] - xs[right - 1] if len(xs) > 1 else np.zeros(len(xm))
        y[(gap > max_gap.value) & (xm > xs[0]) & (xm < xs[-1])] = np.nan
        out[col] = y
    return pd.DataFrame(out, index=index)


def parse_open_meteo(data: dict[str, Any]) -> pd.DataFrame:
    """Parse an Open-Meteo ``/v1/forecast`` JSON answer with hourly variables.

    Returns a frame indexed by the instant each value represents (UTC): radiation is the mean
    over the preceding hour, so it is labelled at that hour's midpoint (−30 min); cloud cover,
    temperature and wind are instantaneous. Wind in km/h is converted to m/s.
    """
    hourly = data.get("hourly")
    if not isinstance(hourly, dict) or "time" not in hourly:
        raise ValueError("Open-Meteo answer has no hourly.time")
    offset = pd.Timedelta(seconds=int(data.get("utc_offset_seconds", 0)))
    times = pd.DatetimeIndex(pd.to_datetime(hourly["time"])) - offset
    times = times.tz_localize("UTC")
    units = data.get("hourly_units", {})
    series = {}
    for src, col in OPEN_METEO_VARIABLES.items():
        if src not in hourly:
            continue
        v = pd.Series(hourly[src], index=times, dtype="float64")  # JSON null -> NaN
        if src == "wind_speed_10m" and str(units.get(src, "")).replace(" ", "") == "km/h":
            v = v / 3.6
        if src == "shortwave_radiation":
            v.index = times - pd.Timedelta("30min")
        series[col] = v
    if not series:
        raise ValueError("Open-Meteo answer has none of the hourly variables")
    frame = pd.concat(series, axis=1, sort=True).sort_index()
    # each variable keeps its own instants; fill the other grid's instants by interpolation
    return frame.interpolate(method="time", limit=1, limit_area="inside")


class OpenMeteoProvider:
    """Hourly forecast from the Open-Meteo API, interpolated to the requested slots."""

    def __init__(self, latitude: float, longitude: float, tz: str = "UTC",
                 client: httpx.Client | None = None, url: str = OPEN_METEO_URL, timeout_s: float = 10.0):
        self.latitude, self.longitude, self.tz = latitude, longitude, tz
        self.url, self.timeout_s = url, timeout_s
        self._client = client

    def request_params(self, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, str]:
        # one extra day each side so interpolation covers the first and last slot
        s = (pd.Timestamp(start).tz_convert(self.tz) - pd.Timedelta("1D")).date()
        e = (pd.Timestamp(end).tz_convert(self.tz) + pd.Timedelta("1D")).date()
        return {
            "latitude": f"{self.latitude:.4f}", "longitude": f"{self.longitude:.4f}",
            "hourly": ",".join(OPEN_METEO_VARIABLES), "timezone": self.tz,
            "wind_speed_unit": "ms", "start_date": s.isoformat(), "end_date": e.isoformat(),
        }

    def fetch_json(self, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, Any]:
        client = self._client or httpx.Client(timeout=self.timeout_s)
        try:
            r = client.get(self.url, params=self.request_params(start, end))
            r.raise_for_status()
            return r.json()
        finally:
            if self._client is None:
                client.close()

    def fetch(self, start: pd.Timestamp, end: pd.Timestamp, freq: str | pd.Timedelta) -> pd.DataFrame:
        index = slot_index(start, end, freq)
        return to_slots(parse_open_meteo(self.fetch_json(index[0], index[-1])), index)


class CsvWeatherProvider:
    """Weather from a CSV file: first column timestamps (ISO 8601; naive = UTC), labelling the
    start of intervals whose means are given in columns from :data:`COLUMNS`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> pd.DataFrame:
        df = pd.read_csv(self.path, index_col=0)
        idx = pd.DatetimeIndex(pd.to_datetime(df.index, utc=True))
        df = df.set_axis(idx).sort_index()
        step = pd.Timedelta(np.median(np.diff(idx.as_unit("ns").asi8)), unit="ns") if len(idx) > 1 else pd.Timedelta("1h")
        return df.set_axis(idx + step / 2)  # values represent their interval midpoints

    def fetch(self, start: pd.Timestamp, end: pd.Timestamp, freq: str | pd.Timedelta) -> pd.DataFrame:
        return to_slots(self.read(), slot_index(start, end, freq))


@dataclass(frozen=True)
class Weather:
    """Weather ready for :func:`vpp.forecast.pv.forecast_pv`, with the fallback flag."""

    frame: pd.DataFrame
    fallback: bool = False
    reason: str = ""


def clear_sky_weather(site: Site, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Cloudless weather [see :data:`COLUMNS`]: clear-sky GHI, 20 °C, 1 m/s."""
    from vpp.forecast.pv import clear_sky_ghi  # pvlib stays in pv.py

    mids = index + (pd.Timedelta(index.freq) if index.freq is not None else pd.Timedelta(0)) / 2
    ghi = clear_sky_ghi(site, mids).to_numpy()
    return pd.DataFrame({"ghi": ghi, "cloud_cover": 0.0, "temp_air": DEFAULT_TEMP_AIR,
                         "wind_speed": DEFAULT_WIND_SPEED}, index=index)


def get_weather(provider: WeatherProvider | None, site: Site, start: pd.Timestamp, end: pd.Timestamp,
                freq: str | pd.Timedelta) -> Weather:
    """Weather for the slots ``[start, end)``; never raises for provider failures.

    Steps without irradiance (no ``ghi`` and no ``cloud_cover``) are filled with clear-sky
    values and the result is flagged ``fallback`` with the reason; missing temperature and
    wind get defaults without the flag.
    """
    index = slot_index(start, end, freq)
    clear = clear_sky_weather(site, index)
    if provider is None:
        return Weather(clear, True, "no weather provider configured: clear-sky")
    try:
        frame = provider.fetch(index[0], index[-1] + pd.Timedelta(freq), freq).reindex(index)
    except (httpx.HTTPError, OSError, ValueError, KeyError) as e:
        log.warning("weather provider failed (%s); using clear sky", e)
        return Weather(clear, True, f"weather provider failed: {type(e).__name__}: {e}")
    frame = frame.reindex(columns=list(COLUMNS))
    no_irr = frame["ghi"].isna() & frame["cloud_cover"].isna()
    frame.loc[no_irr, ["ghi", "cloud_cover"]] = clear.loc[no_irr, ["ghi", "cloud_cover"]]
    frame["temp_air"] = frame["temp_air"].fillna(DEFAULT_TEMP_AIR)
    frame["wind_speed"] = frame["wind_speed"].fillna(DEFAULT_WIND_SPEED)
    n = int(no_irr.sum())
    if n:
        return Weather(frame, True, f"{n} of {len(index)} slots without irradiance: clear-sky")
    return Weather(frame, False, "")


def weather_provider(spec: str, config: SiteConfig) -> WeatherProvider | None:
    """The provider ``spec`` names: ``clear-sky`` (None: offline clear sky), ``open-meteo``
    (the site's coordinates) or the path of a weather CSV."""
    if spec == "clear-sky":
        return None
    if spec == "open-meteo":
        s = config.site
        return OpenMeteoProvider(s.latitude, s.longitude, s.timezone, timeout_s=5.0)
    return CsvWeatherProvider(spec)
