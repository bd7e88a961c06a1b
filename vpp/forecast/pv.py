"""PV AC power forecast for many arrays at once, and a measured-vs-forecast bias correction.

The model chain (all steps are pvlib functions, vectorised over arrays × time):

1. solar position once for the whole index, at each slot's midpoint (weather values are
   interval means, so the midpoint is the representative sun position);
2. GHI from the weather, or from clear-sky GHI (Ineichen) reduced by cloud cover with the
   Kasten–Czeplak relation ``GHI = GHI_cs · (1 − 0.75 · (cc/100)^3.4)``;
3. DNI/DHI by the Erbs decomposition;
4. plane-of-array irradiance by the Hay–Davies transposition (``get_total_irradiance``) with
   array tilt/azimuth as column vectors ``(n_arrays, 1)`` broadcast against ``(1, n_steps)``;
5. incidence-angle modifier (``iam.physical``) on the beam component;
6. SAPM cell temperature with the array's mounting parameters;
7. PVWatts DC (γ = −0.4 %/K) × (1 − losses), then the PVWatts inverter model.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pvlib

from vpp.config import PvArray, Site

#: PVWatts DC temperature coefficient [1/K] (crystalline silicon default).
GAMMA_PDC = -0.004
#: Nominal inverter efficiency [fraction] for the PVWatts inverter model.
ETA_INV_NOM = 0.96
#: Kasten–Czeplak cloud-cover constants.
KC_A, KC_B = 0.75, 3.4


def slot_length(index: pd.DatetimeIndex, default: pd.Timedelta = pd.Timedelta("1h")) -> pd.Timedelta:
    """Slot length of a regular index [Timedelta]: its ``freq``, else the median spacing."""
    if index.freq is not None:
        return pd.Timedelta(index.freq)
    if len(index) >= 2:
        return pd.Timedelta(np.median(np.diff(index.as_unit("ns").asi8)), unit="ns")
    return default


def cloud_cover_to_ghi(ghi_clear: np.ndarray, cloud_cover_pct: np.ndarray) -> np.ndarray:
    """Kasten–Czeplak: GHI [W/m2] from clear-sky GHI [W/m2] and total cloud cover [%]."""
    cc = np.clip(np.asarray(cloud_cover_pct, dtype=float), 0.0, 100.0) / 100.0
    return np.asarray(ghi_clear, dtype=float) * (1.0 - KC_A * cc**KC_B)


def clear_sky_ghi(site: Site, index: pd.DatetimeIndex, solar_position: pd.DataFrame | None = None) -> pd.Series:
    """Ineichen clear-sky GHI [W/m2] at the site for ``index`` (UTC) with climatological turbidity."""
    loc = pvlib.location.Location(site.latitude, site.longitude, tz="UTC", altitude=site.altitude)
    return loc.get_clearsky(index, model="ineichen", solar_position=solar_position)["ghi"]


def _solar_position(site: Site, index: pd.DatetimeIndex) -> pd.DataFrame:
    mid = index + slot_length(index) / 2
    sp = pvlib.solarposition.get_solarposition(mid, site.latitude, site.longitude, altitude=site.altitude)
    sp.index = index
    return sp


def _array_params(arrays: Sequence[PvArray]) -> dict[str, np.ndarray]:
    temp = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]
    col = lambda vals: np.asarray(vals, dtype=float)[:, None]  # noqa: E731 - (n_arrays, 1)
    return {
        "tilt": col([a.tilt for a in arrays]),
        "azimuth": col([a.azimuth for a in arrays]),
        "pdc0": col([a.kwp * 1000.0 for a in arrays]),
        "losses": col([a.losses for a in arrays]),
        "a": col([temp[a.temperature_model]["a"] for a in arrays]),
        "b": col([temp[a.temperature_model]["b"] for a in arrays]),
        "dT": col([temp[a.temperature_model]["deltaT"] for a in arrays]),
    }


def weather_ghi(site: Site, weather: pd.DataFrame, solar_position: pd.DataFrame) -> np.ndarray:
    """GHI [W/m2] per step: measured/forecast ``ghi`` where given, else from ``cloud_cover`` [%].

    Steps where neither is available get clear-sky GHI (the caller flags that fallback).
    """
    n = len(weather)
    ghi = weather["ghi"].to_numpy(dtype=float) if "ghi" in weather else np.full(n, np.nan)
    missing = ~np.isfinite(ghi)
    if missing.any():
        cs = clear_sky_ghi(site, weather.index, solar_position).to_numpy()
        cc = weather["cloud_cover"].to_numpy(dtype=float) if "cloud_cover" in weather else np.full(n, np.nan)
        from_cc = cloud_cover_to_ghi(cs, np.where(np.isfinite(cc), cc, 0.0))
        ghi = np.where(missing, from_cc, ghi)
    return np.clip(ghi, 0.0, None)


def forecast_pv(arrays: Sequence[PvArray], site: Site, weather: pd.DataFrame) -> pd.DataFrame:
    """AC power [W] per PV array for each weather step.

    Parameters
    ----------
    arrays : sequence of PvArray
        kWp, tilt [deg], azimuth [deg, 180 = south], losses [fraction], SAPM mounting.
    site : Site
        latitude/longitude [deg], altitude [m].
    weather : DataFrame
        Index: slot starts (tz-aware, converted to UTC). Columns: ``ghi`` [W/m2] and/or
        ``cloud_cover`` [%], ``temp_air`` [°C] (default 20), ``wind_speed`` [m/s] (default 1).
        Values are interval means over each slot.

    Returns
    -------
    DataFrame
        Index = weather index (UTC); one column per array id; AC power [W] >= 0.
    """
    index = pd.DatetimeIndex(weather.index).tz_convert("UTC")
    ids = [a.id for a in arrays]
    if not arrays or len(index) == 0:
        return pd.DataFrame(0.0, index=index, columns=ids)
    w = weather.set_axis(index)
    sp = _solar_position(site, index)
    zen = sp["zenith"].to_numpy()[None, :]
    azi = sp["azimuth"].to_numpy()[None, :]
    ghi = weather_ghi(site, w, sp)
    erbs = pvlib.irradiance.erbs(ghi, sp["zenith"].to_numpy(), index.day_of_year.to_numpy())
    dni = np.nan_to_num(erbs["dni"])[None, :]
    dhi = np.nan_to_num(erbs["dhi"])[None, :]
    dni_extra = pvlib.irradiance.get_extra_radiation(index.day_of_year.to_numpy())[None, :]
    p = _array_params(arrays)

    poa = pvlib.irradiance.get_total_irradiance(
        p["tilt"], p["azimuth"], zen, azi, dni, ghi[None, :], dhi,
        dni_extra=dni_extra, model="haydavies",
    )
    aoi = pvlib.irradiance.aoi(p["tilt"], p["azimuth"], zen, azi)
    beam = np.nan_to_num(poa["poa_direct"]) * pvlib.iam.physical(aoi)
    diffuse = np.nan_to_num(poa["poa_diffuse"])
    effective = np.clip(beam + diffuse, 0.0, None)

    temp_air = _column(w, "temp_air", 20.0)[None, :]
    wind = _column(w, "wind_speed", 1.0)[None, :]
    t_cell = pvlib.temperature.sapm_cell(effective, temp_air, wind, p["a"], p["b"], p["dT"])
    pdc = pvlib.pvsystem.pvwatts_dc(effective, t_cell, p["pdc0"], GAMMA_PDC) * (1.0 - p["losses"])
    # DC:AC ratio 1.0 (the inverter DC limit equals the array nameplate).
    pac = pvlib.inverter.pvwatts(pdc, p["pdc0"], eta_inv_nom=ETA_INV_NOM)
    pac = np.clip(np.nan_to_num(pac), 0.0, None)
    return pd.DataFrame(pac.T, index=index, columns=ids)


def _column(w: pd.DataFrame, name: str, default: float) -> np.ndarray:
    if name not in w:
        return np.full(len(w), default)
    v = w[name].to_numpy(dtype=float)
    return np.where(np.isfinite(v), v, default)


@dataclass
class BiasCorrector:
    """Multiplicative bias correction per hour of day, fitted from measured vs forecast PV.

    The ratio for an hour is ``Σ measured / Σ forecast`` over the steps of that hour where the
    forecast exceeds ``min_fraction`` of its maximum (nights and dawn are ignored, so zeros
    cannot blow up the ratio). Hours with fewer than ``min_points`` usable steps use the
    all-hours ratio; every ratio is clamped to ``[lo, hi]``. Unfitted → ratio 1.
    """

    lo: float = 0.5
    hi: float = 1.5
    min_fraction: float = 0.05
    min_points: int = 3
    overall: float = 1.0
    by_hour: dict[int, float] = field(default_factory=dict)

    def fit(self, measured: pd.Series, forecast: pd.Series) -> "BiasCorrector":
        """Fit from two power series [W] on a shared (tz-aware) index; NaNs are dropped."""
        df = pd.concat({"m": measured, "f": forecast}, axis=1, sort=True).dropna()
        if df.empty or df["f"].max() <= 0:
            self.overall, self.by_hour = 1.0, {}
            return self
        df = df[(df["f"] > self.min_fraction * df["f"].max()) & (df["m"] >= 0)]
        if len(df) < self.min_points:
            self.overall, self.by_hour = 1.0, {}
            return self
        self.overall = float(np.clip(df["m"].sum() / df["f"].sum(), self.lo, self.hi))
        hours = pd.DatetimeIndex(df.index).tz_convert("UTC").hour
        g = df.groupby(hours)
        sums, counts = g.sum(), g.size()
        self.by_hour = {
            int(h): float(np.clip(sums.loc[h, "m"] / sums.loc[h, "f"], self.lo, self.hi))
            for h in sums.index if counts.loc[h] >= self.min_points and sums.loc[h, "f"] > 0
        }
        return self

    def factors(self, index: pd.DatetimeIndex) -> np.ndarray:
        """Correction factor per timestamp [fraction]."""
        hours = pd.DatetimeIndex(index).tz_convert("UTC").hour
        return np.array([self.by_hour.get(int(h), self.overall) for h in hours], dtype=float)

    def apply(self, forecast: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
        """Corrected forecast [W] (same shape; every column scaled by the hour's factor)."""
        f = self.factors(forecast.index)
        if isinstance(forecast, pd.DataFrame):
            return forecast.mul(f, axis=0)
        return forecast * f
