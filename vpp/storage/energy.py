"""Slot energy from sampled power or lifetime counters (pure, vectorised).

Times are integer nanoseconds since the epoch; slot edges are ``n+1`` increasing times that
delimit ``n`` slots. Results are energy per slot in Wh.
"""
from __future__ import annotations

import numpy as np


def slot_energy_from_counter(t_ns: np.ndarray, counter_wh: np.ndarray, edges_ns: np.ndarray) -> np.ndarray:
    """Energy per slot [Wh] as the difference of a lifetime counter [Wh] at the slot edges.

    The counter is interpolated linearly between samples at each edge and held constant
    outside the sampled range (so slots without any data get 0 Wh).

    Parameters
    ----------
    t_ns : sample times [ns], increasing
    counter_wh : counter readings [Wh]
    edges_ns : slot edges [ns], increasing, length n+1

    Returns
    -------
    ndarray, length n [Wh]
    """
    edges = np.asarray(edges_ns, dtype=np.int64)
    if len(t_ns) == 0:
        return np.zeros(len(edges) - 1)
    t0 = int(t_ns[0])
    c = np.interp((edges - t0).astype(float), (np.asarray(t_ns, np.int64) - t0).astype(float),
                  np.asarray(counter_wh, float))
    return np.diff(c)


def slot_energy_from_power(t_ns: np.ndarray, power_w: np.ndarray, edges_ns: np.ndarray,
                           max_gap_s: float = 300.0) -> np.ndarray:
    """Energy per slot [Wh] by trapezoidal integration of sampled power [W].

    Power is taken as linear between consecutive samples; intervals longer than
    ``max_gap_s`` [s] (device offline) contribute nothing, and nothing is extrapolated
    beyond the first and last sample. Intervals that straddle a slot edge are split at it.

    Parameters
    ----------
    t_ns : sample times [ns], increasing
    power_w : power samples [W]
    edges_ns : slot edges [ns], increasing, length n+1
    max_gap_s : longest interval still integrated [s]

    Returns
    -------
    ndarray, length n [Wh]
    """
    edges = np.asarray(edges_ns, dtype=np.int64)
    n = len(t_ns)
    if n < 2:
        return np.zeros(len(edges) - 1)
    t0 = int(t_ns[0])
    t = (np.asarray(t_ns, np.int64) - t0) / 1e9          # [s]
    p = np.asarray(power_w, float)
    x = (edges - t0) / 1e9                               # [s]
    dt = np.diff(t)
    valid = (dt > 0) & (dt <= max_gap_s)
    seg = np.where(valid, 0.5 * (p[:-1] + p[1:]) * dt, 0.0)  # [J]
    cum = np.concatenate(([0.0], np.cumsum(seg)))
    k = np.clip(np.searchsorted(t, x, side="right") - 1, 0, n - 2)
    dx = np.clip(x - t[k], 0.0, dt[k])
    slope = np.where(dt[k] > 0, (p[k + 1] - p[k]) / np.where(dt[k] > 0, dt[k], 1.0), 0.0)
    partial = np.where(valid[k], p[k] * dx + 0.5 * slope * dx * dx, 0.0)
    e = np.where(x <= t[0], 0.0, np.where(x >= t[-1], cum[-1], cum[k] + partial))
    return np.diff(e) / 3600.0
