"""Device physics as pure, vectorised functions.

Every function takes scalars, numpy arrays or pandas Series (broadcast together) and returns
the same kind; no I/O, no state. Units are in brackets in each parameter description. Sign
convention as in :mod:`drivers`: battery AC power > 0 discharges, grid power > 0 imports.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pvlib

#: IEC 61851-1 control-pilot states as the numbers used in ``FIELDS`` (A=1 … F=6).
EV_STATE_A, EV_STATE_B, EV_STATE_C, EV_STATE_D, EV_STATE_E, EV_STATE_F = 1, 2, 3, 4, 5, 6


def _out(x: Any, like: Any) -> Any:
    """Return ``x`` as a float for scalar ``like``, a Series if ``like`` is one, else array."""
    if isinstance(like, pd.Series):
        return pd.Series(np.asarray(x, dtype=float), index=like.index)
    if np.ndim(x) == 0:
        return float(x)
    return np.asarray(x, dtype=float)


# --------------------------------------------------------------------------------------- PV
def clearsky_poa(times: pd.DatetimeIndex, latitude: float, longitude: float, altitude: float,
                 tilt: float, azimuth: float, albedo: float = 0.2) -> pd.Series:
    """Clear-sky plane-of-array global irradiance.

    Ineichen clear-sky (Linke turbidity from pvlib's climatology) transposed to the array
    plane with the isotropic sky model.

    Parameters
    ----------
    times : pandas.DatetimeIndex
        tz-aware instants.
    latitude, longitude : float
        Site position [deg].
    altitude : float
        Site altitude [m].
    tilt : float
        Array tilt from horizontal [deg].
    azimuth : float
        Array azimuth [deg], 180 = south.
    albedo : float
        Ground reflectance [-].

    Returns
    -------
    pandas.Series
        POA global irradiance [W/m²], 0 at night, indexed by ``times``.
    """
    loc = pvlib.location.Location(latitude, longitude, altitude=altitude)
    sp = loc.get_solarposition(times)
    cs = loc.get_clearsky(times, model="ineichen", solar_position=sp)
    poa = pvlib.irradiance.get_total_irradiance(
        tilt, azimuth, sp["apparent_zenith"], sp["azimuth"], cs["dni"], cs["ghi"], cs["dhi"],
        albedo=albedo, model="isotropic",
    )["poa_global"]
    return poa.fillna(0.0).clip(lower=0.0)


def cell_temperature(poa_w_m2: Any, temp_air_c: Any = 20.0, wind_speed_m_s: Any = 1.0,
                     model: str = "open_rack_glass_polymer") -> Any:
    """PV cell temperature from the SAPM thermal model (pvlib ``sapm_cell``).

    Parameters
    ----------
    poa_w_m2 : array-like
        Plane-of-array irradiance reaching the module [W/m²].
    temp_air_c : array-like
        Ambient air temperature [°C].
    wind_speed_m_s : array-like
        Wind speed at 10 m [m/s].
    model : str
        Key of ``pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]`` (mounting).

    Returns
    -------
    Cell temperature [°C].
    """
    p = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][model]
    t = pvlib.temperature.sapm_cell(np.asarray(poa_w_m2, dtype=float), temp_air_c,
                                    wind_speed_m_s, p["a"], p["b"], p["deltaT"])
    return _out(t, poa_w_m2)


def pv_ac_power(poa_w_m2: Any, kwp: Any, clear_sky_index: Any = 1.0, losses: Any = 0.14,
                rating_w: Any = np.inf, limit_w: Any = np.inf, temp_cell_c: Any = 25.0,
                gamma_pdc: float = -0.004) -> Any:
    """AC power of a PV system (PVWatts DC model, flat inverter efficiency in ``losses``).

    ``p = min(kwp·1000 · poa·csi/1000 · (1 + γ(T_cell − 25)) · (1 − losses), rating, limit)``

    Parameters
    ----------
    poa_w_m2 : array-like
        Clear-sky plane-of-array irradiance [W/m²].
    kwp : array-like
        DC nameplate [kWp] (at 1000 W/m², 25 °C).
    clear_sky_index : array-like
        Cloud attenuation [0..1], 1 = clear sky.
    losses : array-like
        System losses incl. inverter [fraction 0..1].
    rating_w : array-like
        Inverter AC rating [W] (clipping).
    limit_w : array-like
        Active-power limit in force [W].
    temp_cell_c : array-like
        Cell temperature [°C].
    gamma_pdc : float
        Power temperature coefficient [1/°C].

    Returns
    -------
    AC power [W], >= 0, same kind as ``poa_w_m2``.
    """
    eff = np.asarray(poa_w_m2, dtype=float) * np.clip(np.asarray(clear_sky_index, dtype=float), 0, 1)
    dc = pvlib.pvsystem.pvwatts_dc(eff, temp_cell_c, np.asarray(kwp, dtype=float) * 1000.0, gamma_pdc)
    ac = np.asarray(dc, dtype=float) * (1.0 - np.asarray(losses, dtype=float))
    ac = np.minimum(np.minimum(ac, rating_w), np.maximum(limit_w, 0.0))
    return _out(np.maximum(ac, 0.0), poa_w_m2)


# ---------------------------------------------------------------------------------- battery
def effective_setpoint(setpoint_w: Any, age_s: Any, revert_s: Any) -> Any:
    """Setpoint still in force, or 0 (idle) once its revert timeout has lapsed.

    Parameters
    ----------
    setpoint_w : array-like
        Commanded AC power [W], > 0 discharge.
    age_s : array-like
        Time since the setpoint was written [s].
    revert_s : array-like
        Revert timeout [s]; <= 0 or NaN means no timeout.

    Returns
    -------
    Setpoint in force [W].
    """
    sp = np.asarray(setpoint_w, dtype=float)
    rv = np.asarray(revert_s, dtype=float)
    lapsed = (rv > 0) & (np.asarray(age_s, dtype=float) >= rv)
    return _out(np.where(lapsed, 0.0, sp), setpoint_w)


def battery_step(soc: Any, setpoint_w: Any, dt_s: Any, capacity_wh: Any, max_charge_w: Any,
                 max_discharge_w: Any, soc_min: Any = 0.0, soc_max: Any = 1.0,
                 charge_efficiency: Any = 0.95, discharge_efficiency: Any = 0.95) -> tuple[Any, Any]:
    """Advance a battery by one step at constant AC power.

    The setpoint is clipped to the power limits and to what keeps SoC within
    ``[soc_min, soc_max]`` over the step. Charging stores ``-p·η_c·dt``; discharging draws
    ``p/η_d·dt`` from the cells.

    Parameters
    ----------
    soc : array-like
        State of charge at the start of the step [fraction 0..1].
    setpoint_w : array-like
        Requested AC power [W], > 0 discharge, < 0 charge.
    dt_s : array-like
        Step length [s].
    capacity_wh : array-like
        Usable capacity [Wh].
    max_charge_w, max_discharge_w : array-like
        AC power limits [W], both > 0.
    soc_min, soc_max : array-like
        SoC limits [fraction].
    charge_efficiency, discharge_efficiency : array-like
        One-way efficiencies [fraction 0..1].

    Returns
    -------
    (power_w, soc_new)
        Delivered AC power [W] (> 0 discharge) and SoC at the end of the step [fraction].
    """
    soc_a = np.asarray(soc, dtype=float)
    dt_h = np.asarray(dt_s, dtype=float) / 3600.0
    cap = np.asarray(capacity_wh, dtype=float)
    eta_c = np.asarray(charge_efficiency, dtype=float)
    eta_d = np.asarray(discharge_efficiency, dtype=float)
    # np.where evaluates both branches: dt_h == 0 divides by zero and a tiny dt_h overflows to
    # inf (the rating then binds); neither is an error here
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        room_dis_w = np.where(dt_h > 0, np.maximum(soc_a - soc_min, 0) * cap * eta_d / dt_h, 0.0)
        room_chg_w = np.where(dt_h > 0, np.maximum(soc_max - soc_a, 0) * cap / (eta_c * dt_h), 0.0)
    p = np.clip(np.asarray(setpoint_w, dtype=float),
                -np.minimum(max_charge_w, room_chg_w), np.minimum(max_discharge_w, room_dis_w))
    cell_wh = np.where(p >= 0, -p / eta_d, -p * eta_c) * dt_h
    soc_new = soc_a + cell_wh / cap
    return _out(p, soc), _out(soc_new, soc)


# ------------------------------------------------------------------------------------- EV
def ev_charge_power(limit_a: Any, voltage_v: Any, phases: Any, car_max_w: Any, need_wh: Any,
                    dt_s: Any = 1.0, min_current_a: Any = 0.0) -> Any:
    """Charging power of a plugged car.

    ``p = min(I_limit·V·phases, car max, need/dt)``; 0 if the limit is below the minimum
    current (IEC 61851: a pilot below 6 A pauses charging) or nothing is needed.

    Parameters
    ----------
    limit_a : array-like
        Current limit signalled to the car [A].
    voltage_v : array-like
        Phase voltage [V].
    phases : array-like
        1 or 3.
    car_max_w : array-like
        On-board charger maximum [W].
    need_wh : array-like
        Energy still wanted by the car [Wh].
    dt_s : array-like
        Step length [s] (so that the last step does not overshoot the need); 0 gives the
        instantaneous rate.
    min_current_a : array-like
        Minimum current at which charging is possible [A].

    Returns
    -------
    Charging power [W], >= 0.
    """
    lim = np.asarray(limit_a, dtype=float)
    p = np.minimum(lim * np.asarray(voltage_v, dtype=float) * phases, car_max_w)
    need = np.maximum(np.asarray(need_wh, dtype=float), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.minimum(p, np.where(np.asarray(dt_s, dtype=float) > 0, need * 3600.0 / dt_s, np.inf))
    p = np.where((lim < np.maximum(min_current_a, 1e-9)) | (need <= 0), 0.0, p)
    return _out(np.maximum(p, 0.0), limit_a)


def ev_discharge_power(setpoint_w: Any, rating_w: Any, soc: Any, soc_floor: Any, capacity_wh: Any,
                       dt_s: Any = 1.0) -> Any:
    """V2H discharge power of a plugged car into the home.

    ``p = min(setpoint, unit rating, (soc − floor)·capacity/dt)``, never below 0: the car
    never goes under its SoC floor (the last step is cut so that it lands on the floor).

    Parameters
    ----------
    setpoint_w : array-like
        Discharge setpoint [W], >= 0.
    rating_w : array-like
        The V2H unit's discharge rating [W].
    soc, soc_floor : array-like
        Vehicle state of charge and the floor it may not go below [0..1].
    capacity_wh : array-like
        Vehicle battery capacity [Wh].
    dt_s : array-like
        Step length [s]; 0 gives the instantaneous rate (only the floor check applies).

    Returns
    -------
    Discharge power [W], >= 0.
    """
    p = np.minimum(np.maximum(np.asarray(setpoint_w, dtype=float), 0.0), rating_w)
    room_wh = np.maximum(np.asarray(soc, dtype=float) - soc_floor, 0.0) * capacity_wh
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.minimum(p, np.where(np.asarray(dt_s, dtype=float) > 0, room_wh * 3600.0 / dt_s, np.inf))
    p = np.where(room_wh <= 0, 0.0, p)
    return _out(np.maximum(p, 0.0), setpoint_w)


def iec61851_state(present: Any, charging: Any, fault: Any = False) -> Any:
    """IEC 61851 state number: A=1 no car, B=2 plugged not charging, C=3 charging, F=6 fault.

    Parameters
    ----------
    present : array-like of bool
        A car is plugged in.
    charging : array-like of bool
        Current is flowing.
    fault : array-like of bool
        EVSE fault.
    """
    s = np.where(np.asarray(fault, dtype=bool), EV_STATE_F,
                 np.where(~np.asarray(present, dtype=bool), EV_STATE_A,
                          np.where(np.asarray(charging, dtype=bool), EV_STATE_C, EV_STATE_B)))
    return _out(s, present)


# ------------------------------------------------------------------------------- site/load
def grid_power(load_w: Any, pv_w: Any = 0.0, battery_w: Any = 0.0, ev_w: Any = 0.0) -> Any:
    """Power at the grid connection [W], > 0 import.

    ``grid = load + ev − pv − battery`` (battery > 0 discharges, so charging adds import).

    Parameters
    ----------
    load_w : array-like
        Household/facility consumption [W], >= 0.
    pv_w : array-like
        PV production [W], >= 0.
    battery_w : array-like
        Battery AC power [W], > 0 discharge.
    ev_w : array-like
        EV charging power [W], >= 0.
    """
    g = (np.asarray(load_w, dtype=float) + np.asarray(ev_w, dtype=float)
         - np.asarray(pv_w, dtype=float) - np.asarray(battery_w, dtype=float))
    return _out(g, load_w)


# Relative daily shapes (mean ≈ 1) at each local hour 0..23.
_HOUSEHOLD_WEEKDAY = np.array([0.55, 0.5, 0.45, 0.45, 0.45, 0.55, 0.9, 1.4, 1.3, 0.9, 0.75, 0.75,
                               0.85, 0.75, 0.7, 0.75, 0.95, 1.35, 1.8, 1.95, 1.8, 1.5, 1.1, 0.75])
_HOUSEHOLD_WEEKEND = np.array([0.6, 0.55, 0.5, 0.45, 0.45, 0.5, 0.6, 0.85, 1.15, 1.3, 1.3, 1.35,
                               1.4, 1.3, 1.2, 1.15, 1.2, 1.4, 1.75, 1.85, 1.7, 1.45, 1.1, 0.8])
_FACILITY_WEEKDAY = np.array([0.45, 0.45, 0.45, 0.45, 0.45, 0.5, 0.65, 1.0, 1.45, 1.6, 1.65, 1.65,
                              1.55, 1.65, 1.65, 1.6, 1.5, 1.35, 1.2, 1.05, 0.85, 0.65, 0.5, 0.45])
_FACILITY_WEEKEND = np.array([0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.5, 0.65, 0.9, 1.1, 1.2, 1.2,
                              1.2, 1.2, 1.15, 1.1, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.45])
_SHAPES = {"household": (_HOUSEHOLD_WEEKDAY, _HOUSEHOLD_WEEKEND),
           "facility": (_FACILITY_WEEKDAY, _FACILITY_WEEKEND)}


def _hash_unit(seed: int, k: np.ndarray) -> np.ndarray:
    """Deterministic uniform numbers in [0, 1) from (seed, integer k) (splitmix64)."""
    with np.errstate(over="ignore"):
        z = (k.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
             + np.uint64(0x632BE59BD9B4E019))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(float) / float(1 << 53)


def load_profile(local_hour: Any, weekend: Any, mean_w: Any, kind: str = "household",
                 seed: int = 0, minute_index: Any = None, noise: float = 0.15) -> Any:
    """Household or facility consumption from a daily profile with seeded noise.

    The hourly shape (mean ≈ 1, linearly interpolated) differs between weekdays and weekends
    (weekends include holidays if the caller says so); each minute gets a multiplicative
    factor ``1 + noise·u`` with ``u`` uniform in [-1, 1) and a deterministic function of
    ``(seed, minute_index)``, so re-running a day yields the same trace.

    Parameters
    ----------
    local_hour : array-like
        Site local time of day [h], 0 <= h < 24 (fractional).
    weekend : array-like of bool
        Saturday, Sunday or a public holiday.
    mean_w : array-like
        Daily mean consumption [W].
    kind : {"household", "facility"}
        Profile shape.
    seed : int
        Noise seed.
    minute_index : array-like of int, optional
        Minutes since the epoch (UTC) used as the noise key; no noise if None.
    noise : float
        Noise amplitude [fraction].

    Returns
    -------
    Consumption [W], >= 0.
    """
    wd, we = _SHAPES[kind]
    h = np.mod(np.asarray(local_hour, dtype=float), 24.0)
    grid = np.arange(25.0)
    f_wd = np.interp(h, grid, np.append(wd, wd[0]))
    f_we = np.interp(h, grid, np.append(we, we[0]))
    f = np.where(np.asarray(weekend, dtype=bool), f_we, f_wd)
    if minute_index is not None:
        u = _hash_unit(seed, np.atleast_1d(np.asarray(minute_index, dtype=np.int64)))
        u = u.reshape(np.shape(minute_index))
        f = f * (1.0 + noise * (2.0 * u - 1.0))
    return _out(np.maximum(f * np.asarray(mean_w, dtype=float), 0.0), local_hour)


def ev_taper_max_w(soc: Any, car_max_w: Any, taper_soc: Any = 0.8, floor_frac: Any = 0.1) -> Any:
    """Most power a car accepts at ``soc`` [fraction]: ``car_max_w`` [W] up to ``taper_soc``,
    then falling linearly to ``floor_frac × car_max_w`` at full and 0 once full (the
    constant-voltage phase of a lithium-ion charge).

    Returns
    -------
    Power [W], >= 0, shaped like ``soc``.
    """
    s = np.clip(np.asarray(soc, dtype=float), 0.0, 1.0)
    top = np.asarray(car_max_w, dtype=float)
    t = np.asarray(taper_soc, dtype=float)
    frac = np.where(s <= t, 1.0, 1.0 - (1.0 - floor_frac) * (s - t) / np.maximum(1.0 - t, 1e-9))
    return _out(np.where(s >= 1.0, 0.0, top * frac), soc)
