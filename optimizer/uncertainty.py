"""Forecast quantiles from a history of forecast errors (pure, vectorised)."""

from __future__ import annotations

import numpy as np

__all__ = ["forecast_quantiles"]


def forecast_quantiles(history_errors, p50, q: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Low / median / high forecasts from past errors.

    Parameters
    ----------
    history_errors : array_like
        Past errors ``actual − forecast`` [W]: 1-D (one error distribution for every slot) or
        2-D ``(days, n)`` (one distribution per slot of the day, NaN ignored).
    p50 : array_like
        Median forecast [W], length ``n``.
    q : float
        Lower quantile (0.1 gives p10/p90; ``1 − confidence`` for a confidence level).

    Returns
    -------
    (low, p50, high) : ndarray [W]
        ``p50 + quantile(errors, q)`` and ``p50 + quantile(errors, 1 − q)``, clipped at 0 and
        ordered ``low ≤ p50 ≤ high`` (an error history biased to one side never moves the
        median forecast itself). No history (empty / all NaN) gives ``low = p50 = high``.

    >>> lo, mid, hi = forecast_quantiles([-200.0, 0.0, 100.0], [1000.0, 50.0], q=0.0)
    >>> lo.tolist(), hi.tolist()
    ([800.0, 0.0], [1100.0, 150.0])
    """
    if not 0 <= q < 0.5:
        raise ValueError("q must be in [0, 0.5)")
    mid = np.clip(np.asarray(p50, float), 0.0, None)
    e = np.asarray(history_errors, float)
    if e.size == 0 or not np.isfinite(e).any():
        return mid.copy(), mid.copy(), mid.copy()
    axis = 0 if e.ndim == 2 else None
    lo_e = np.nanquantile(e, q, axis=axis)
    hi_e = np.nanquantile(e, 1.0 - q, axis=axis)
    lo = np.clip(mid + np.minimum(np.nan_to_num(lo_e), 0.0), 0.0, None)
    hi = mid + np.maximum(np.nan_to_num(hi_e), 0.0)
    return lo, mid.copy(), hi
