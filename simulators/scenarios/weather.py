"""A scenario's weather: the clear-sky index the simulated PV sees, and the forecast the
controller gets (the same trace, optionally biased), as a :class:`WeatherProvider`."""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache

import numpy as np
import pandas as pd

from simulators.scenarios.spec import Weather
from vpp.config import Site
from vpp.forecast.pv import KC_A, KC_B
from vpp.forecast.weather import COLUMNS, clear_sky_weather, slot_index

#: Resolution of the seeded cloud noise [s].
NOISE_STEP_S = 600


@lru_cache(maxsize=4096)
def _noise(seed: int, k: int) -> float:
    return float(np.random.default_rng([seed, k + 2**40]).uniform(-1, 1))  # k < 0 before the start


class CloudTrace:
    """``trace(now) -> clear-sky index [0..1.2]`` from a :class:`Weather` spec."""

    def __init__(self, spec: Weather, start: datetime, seed: int = 0, scale: float = 1.0) -> None:
        self.spec, self.t0, self.seed, self.scale = spec, start.timestamp(), seed, scale

    def at_hours(self, h: np.ndarray) -> np.ndarray:
        """Clear-sky index at ``h`` hours after the start (vectorised)."""
        h = np.asarray(h, dtype=float)
        s = self.spec
        if s.trace:
            xs, ys = zip(*sorted(s.trace))
            csi = np.interp(h, xs, ys)
        else:
            day = np.floor(h / 24.0).astype(int) % len(s.daily)
            csi = np.asarray(s.daily, float)[day]
        if s.variability > 0:
            k = np.floor(h * 3600 / NOISE_STEP_S).astype(np.int64)
            noise = np.array([_noise(self.seed, int(x)) for x in np.atleast_1d(k)])
            csi = csi + s.variability * noise.reshape(np.shape(csi))
        return np.clip(csi * self.scale, 0.0, 1.0)

    def __call__(self, now: datetime) -> float:
        return float(self.at_hours((now.timestamp() - self.t0) / 3600.0))


def cloud_cover_pct(csi: np.ndarray) -> np.ndarray:
    """Total cloud cover [%] giving clear-sky index ``csi`` under Kasten–Czeplak (inverse of
    :func:`vpp.forecast.pv.cloud_cover_to_ghi`)."""
    x = np.clip((1.0 - np.asarray(csi, float)) / KC_A, 0.0, 1.0)
    return 100.0 * x ** (1.0 / KC_B)


class TraceWeatherProvider:
    """Forecast from a cloud trace (``fetch`` as :class:`vpp.forecast.weather.WeatherProvider`):
    clear-sky GHI reduced by the trace's index at each slot's midpoint."""

    def __init__(self, trace: CloudTrace, site: Site) -> None:
        self.trace, self.site = trace, site

    def fetch(self, start: pd.Timestamp, end: pd.Timestamp, freq) -> pd.DataFrame:
        index = slot_index(start, end, freq)
        frame = clear_sky_weather(self.site, index)
        mids = index + pd.Timedelta(freq) / 2
        h = (mids.as_unit("s").asi8.astype(float) - self.trace.t0) / 3600.0
        csi = self.trace.at_hours(h)
        frame["ghi"] = frame["ghi"].to_numpy() * csi
        frame["cloud_cover"] = cloud_cover_pct(csi)
        return frame[list(COLUMNS)]
