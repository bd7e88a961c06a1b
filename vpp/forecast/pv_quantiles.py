"""PV p10 / p90 [W] from the bias correction's residual history and weather ensembles.

Residuals: over the days the :class:`vpp.forecast.pv.BiasCorrector` is fitted on, the ratio
``measured / corrected model`` per daylight slot (model above ``min_fraction`` of its maximum:
dawn ratios are noise). Its 10th and 90th percentiles (the empirical error distribution,
through :func:`optimizer.uncertainty.forecast_quantiles` on the relative error) scale the
p50 forecast: PV errors are proportional to the irradiance, so the band is multiplicative
and closes at night. The p90 never exceeds the larger of the p50 and the clear-sky PV
(cloud enhancement aside, a sunny sky is the ceiling).

Ensembles: a provider with ``fetch_ensemble(start, end, freq) -> list[DataFrame]`` (members
with the columns of :data:`vpp.forecast.weather.COLUMNS`) gives a PV run per member; the
band is then the envelope of the members' 10–90 % spread and the residual band (either alone
when the other is missing). Without enough residuals and without an ensemble there is no
band (None), and callers use their stated fallbacks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from optimizer.uncertainty import forecast_quantiles

#: Daylight slots needed before the residual band is trusted (≈ 2 days of 15-min slots).
MIN_RESIDUALS = 40


@dataclass(frozen=True)
class PvQuantiles:
    """PV p10 / p90 [W] on the horizon (None: no basis for a band) and how they were made."""

    p10: pd.Series | None
    p90: pd.Series | None
    basis: str


def residual_ratios(measured: pd.Series, forecast: pd.Series, min_fraction: float = 0.05) -> np.ndarray:
    """``measured / forecast`` [fraction] per slot where both are finite, the measurement is
    ≥ 0 and the forecast exceeds ``min_fraction`` of its maximum."""
    df = pd.concat({"m": pd.to_numeric(measured, errors="coerce"), "f": forecast}, axis=1, sort=True)
    df = df[np.isfinite(df["m"]) & np.isfinite(df["f"]) & (df["m"] >= 0)]
    if df.empty or df["f"].max() <= 0:
        return np.array([])
    df = df[df["f"] > min_fraction * df["f"].max()]
    return (df["m"] / df["f"]).to_numpy(dtype=float)


def pv_quantiles(p50: pd.Series, ratios: np.ndarray | None = None, clear_sky: pd.Series | None = None,
                 ensemble: list[pd.Series] | None = None, q: float = 0.1,
                 min_residuals: int = MIN_RESIDUALS) -> PvQuantiles:
    """p10/p90 PV [W] around ``p50`` [W] from residual ``ratios`` (:func:`residual_ratios`)
    and/or ``ensemble`` members' PV [W] (bias-corrected, on ``p50``'s index); ``clear_sky``
    [W] caps the p90. Always ``0 ≤ p10 ≤ p50 ≤ p90``."""
    mid = np.clip(p50.to_numpy(dtype=float), 0.0, None)
    parts, lo, hi = [], None, None
    r = np.asarray(ratios if ratios is not None else [], dtype=float)
    r = r[np.isfinite(r)]
    if len(r) >= min_residuals:
        lo_r, _, hi_r = forecast_quantiles(r - 1.0, [1.0], q=q)
        lo, hi = mid * lo_r[0], mid * hi_r[0]
        parts.append(f"residuals of {len(r)} daylight slots (×{lo_r[0]:.2f} … ×{hi_r[0]:.2f})")
    if ensemble:
        members = np.vstack([np.clip(m.reindex(p50.index).to_numpy(dtype=float), 0.0, None) for m in ensemble])
        e_lo, e_hi = np.nanquantile(members, q, axis=0), np.nanquantile(members, 1 - q, axis=0)
        lo = e_lo if lo is None else np.fmin(lo, e_lo)
        hi = e_hi if hi is None else np.fmax(hi, e_hi)
        parts.append(f"{len(ensemble)} weather ensemble members")
    if lo is None or hi is None:
        return PvQuantiles(None, None, f"no PV band: {len(r)} residual slots < {min_residuals} and no ensemble")
    if clear_sky is not None:
        cap = np.fmax(clear_sky.reindex(p50.index).to_numpy(dtype=float), mid)
        hi = np.where(np.isfinite(cap), np.fmin(hi, cap), hi)
    lo = np.clip(np.fmin(np.nan_to_num(lo, nan=0.0), mid), 0.0, None)
    hi = np.fmax(np.nan_to_num(hi, nan=0.0), mid)
    basis = "PV band from " + " and ".join(parts)
    return PvQuantiles(_series(lo, p50.index, basis), _series(hi, p50.index, basis), basis)


def _series(v: np.ndarray, index: pd.DatetimeIndex, basis: str) -> pd.Series:
    s = pd.Series(v, index=index, name="pv_w")
    s.attrs["basis"] = basis
    return s


def ensemble_members(provider: Any, start: pd.Timestamp, end: pd.Timestamp, freq: pd.Timedelta) -> list[pd.DataFrame]:
    """The provider's weather ensemble members for ``[start, end)`` (``fetch_ensemble``), or
    ``[]`` when it has none or fails (the band then rests on the residuals alone)."""
    fetch = getattr(provider, "fetch_ensemble", None)
    if fetch is None:
        return []
    try:
        members = fetch(start, end, freq)
    except Exception:  # noqa: BLE001 - an ensemble is an extra; the p50 does not depend on it
        return []
    return [m for m in members if isinstance(m, pd.DataFrame) and len(m)]
