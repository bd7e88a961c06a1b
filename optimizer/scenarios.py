"""Joint PV / load scenarios from per-slot quantiles (pure, vectorised).

:func:`sample_scenarios` draws ``k`` paths whose per-slot marginals have the given p10 / p50 /
p90 (a split normal through the three quantiles) and whose errors are correlated between
neighbouring slots (a Gaussian AR(1) copula: forecast errors come in spells, not as
independent slot-to-slot noise) and, optionally, between PV and load. Scenario 0 is always the
median forecast itself, so ``k = 1`` is the deterministic p50 plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Z90", "Scenarios", "sample_scenarios", "split_normal"]

Z90 = 1.2815515655446004  # standard normal 90 % quantile


@dataclass(frozen=True)
class Scenarios:
    """``k`` joint scenarios over ``n`` slots: ``pv_w``, ``load_w`` [W], shape ``(k, n)``;
    ``weights`` (``k``, sum 1) their probabilities. Row 0 is the median forecast."""

    pv_w: np.ndarray
    load_w: np.ndarray
    weights: np.ndarray

    @property
    def k(self) -> int:
        return int(self.pv_w.shape[0])


def split_normal(z: np.ndarray, p10, p50, p90) -> np.ndarray:
    """Value at standard-normal score ``z`` of the split normal through ``(p10, p50, p90)``
    [W]: ``p50 + z·(p90 − p50)/z90`` for ``z ≥ 0``, ``p50 + z·(p50 − p10)/z90`` below;
    clipped at 0. ``z = ±z90`` gives exactly p90 / p10.

    >>> split_normal(np.array([-Z90, 0.0, Z90]), 80.0, 100.0, 150.0).round(6).tolist()
    [80.0, 100.0, 150.0]
    """
    p10, p50, p90 = (np.asarray(x, float) for x in (p10, p50, p90))
    up = np.maximum(p90 - p50, 0.0) / Z90
    dn = np.maximum(p50 - p10, 0.0) / Z90
    return np.clip(p50 + np.where(z >= 0, z * up, z * dn), 0.0, None)


def _ar1(rng: np.random.Generator, k: int, n: int, rho: float) -> np.ndarray:
    """``(k, n)`` standard-normal paths with correlation ``rho`` between neighbouring slots."""
    eps = rng.standard_normal((k, n))
    z = np.empty((k, n))
    z[:, 0] = eps[:, 0]
    s = np.sqrt(1.0 - rho * rho)
    for t in range(1, n):
        z[:, t] = rho * z[:, t - 1] + s * eps[:, t]
    return z


def sample_scenarios(pv_p10, pv_p50, pv_p90, load_p10, load_p50, load_p90, k: int, *,
                     slot_correlation: float = 0.9, pv_load_correlation: float = 0.0,
                     seed: int = 0) -> Scenarios:
    """``k`` joint PV / load scenarios respecting the per-slot quantiles.

    Parameters
    ----------
    pv_p10, pv_p50, pv_p90, load_p10, load_p50, load_p90 : array_like
        Per-slot quantiles [W], length ``n`` (each triple is sorted per slot, so crossed
        quantiles do not make a scenario leave the band).
    k : int
        Number of scenarios (>= 1). Row 0 is the median; rows 1… are sampled, equally weighted.
    slot_correlation : float
        Correlation of the normal scores of neighbouring slots, in ``[0, 1)``.
    pv_load_correlation : float
        Correlation of the PV and load scores in the same slot, in ``(-1, 1)`` (a cloudy day
        is a cool day: a slightly positive or negative value, site-dependent; 0 = independent).
    seed : int
        The draw is a pure function of the inputs and ``seed``.

    Returns
    -------
    Scenarios
        ``pv_w``, ``load_w`` of shape ``(k, n)`` [W] and equal ``weights``. Sampled rows have
        each slot's p10 / p90 as their 10 % / 90 % quantiles (in the limit of many rows).
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    if not 0.0 <= slot_correlation < 1.0:
        raise ValueError("slot_correlation must be in [0, 1)")
    if not -1.0 < pv_load_correlation < 1.0:
        raise ValueError("pv_load_correlation must be in (-1, 1)")
    pv = np.sort(np.vstack([np.asarray(x, float) for x in (pv_p10, pv_p50, pv_p90)]), axis=0)
    ld = np.sort(np.vstack([np.asarray(x, float) for x in (load_p10, load_p50, load_p90)]), axis=0)
    n = pv.shape[1]
    if ld.shape[1] != n:
        raise ValueError(f"pv has {n} slots, load {ld.shape[1]}")
    rng = np.random.default_rng(seed)
    z_pv = _ar1(rng, k, n, slot_correlation)
    z_other = _ar1(rng, k, n, slot_correlation)
    c = pv_load_correlation
    z_ld = c * z_pv + np.sqrt(1.0 - c * c) * z_other
    z_pv[0], z_ld[0] = 0.0, 0.0  # row 0: the median forecast
    return Scenarios(pv_w=split_normal(z_pv, *pv), load_w=split_normal(z_ld, *ld), weights=np.full(k, 1.0 / k))
