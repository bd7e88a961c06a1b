"""Gradient-boosted quantile regression with a split-conformal calibration (p10/p50/p90).

:class:`QuantileGBM` fits one booster per quantile (pinball loss) on a training part and
measures, on a later calibration part, how far the raw p10 / p90 miss: the one-sided
conformity scores ``s_lo = q̂10 − y`` and ``s_hi = y − q̂90``. The lower bound moves down by the
``⌈(n+1)(1−0.1)⌉/n`` empirical quantile of ``s_lo`` (up when the booster was too cautious) and
the upper bound likewise, so on exchangeable data each tail holds at most 10 % and the
p10–p90 interval covers ≥ 80 % (split conformal / CQR, Romano et al. 2019, with a
separate adjustment per tail). The median is not adjusted. Predictions are sorted per row
(``p10 ≤ p50 ≤ p90``) and clipped at 0 (loads are consumption).

Back-ends: ``lightgbm`` (default) or ``sklearn`` (``HistGradientBoostingRegressor(loss=
"quantile")``); both handle NaN features natively (missing lags). Measured in the same run on
the shared 2-core machine (bench/forecast.py, bench/README.md "Quantile load forecast"):
LightGBM fitted a site 2.7–7× and the 721-home pooled model 1.2–1.9× faster (two runs), at the
same pinball loss and coverage; forecasting 721 homes took about as long with either. One
thread each: with 2 OpenMP threads on a busy 2-core machine a fit took 15× longer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

QUANTILES: tuple[float, float, float] = (0.1, 0.5, 0.9)
BACKENDS = ("lightgbm", "sklearn")


@dataclass
class QuantileGBM:
    """Quantile boosters for ``QUANTILES`` + conformal tail adjustments ``adjust`` (lo, hi).

    ``n_estimators`` / ``learning_rate`` / ``num_leaves`` / ``min_child_samples`` are the
    usual booster settings (kept small: a site's 8 weeks of 15-min slots are ~5000 rows);
    ``threads`` the cores a fit or predict may use."""

    backend: str = "lightgbm"
    n_estimators: int = 120
    learning_rate: float = 0.08
    num_leaves: int = 15
    min_child_samples: int = 20
    threads: int = 1
    seed: int = 0
    models: list = field(default_factory=list)
    adjust: tuple[float, float] = (0.0, 0.0)
    n_calibration: int = 0

    def _booster(self, q: float):
        if self.backend == "lightgbm":
            import lightgbm as lgb

            return lgb.LGBMRegressor(objective="quantile", alpha=q, n_estimators=self.n_estimators,
                                     learning_rate=self.learning_rate, num_leaves=self.num_leaves,
                                     min_child_samples=self.min_child_samples, subsample=0.8, subsample_freq=1,
                                     n_jobs=self.threads, random_state=self.seed, verbose=-1)
        if self.backend == "sklearn":
            from sklearn.ensemble import HistGradientBoostingRegressor

            return HistGradientBoostingRegressor(loss="quantile", quantile=q, max_iter=self.n_estimators,
                                                 learning_rate=self.learning_rate, max_leaf_nodes=self.num_leaves,
                                                 min_samples_leaf=self.min_child_samples, early_stopping=False,
                                                 random_state=self.seed)
        raise ValueError(f"backend must be one of {BACKENDS}, not {self.backend!r}")

    def fit(self, x: np.ndarray, y: np.ndarray, x_cal: np.ndarray | None = None,
            y_cal: np.ndarray | None = None) -> "QuantileGBM":
        """Fit on ``(x, y)`` (rows with non-finite ``y`` dropped), then calibrate on
        ``(x_cal, y_cal)`` (none: no adjustment)."""
        x, y = _finite_rows(x, y)
        if len(y) == 0:
            raise ValueError("no finite training targets")
        self.models = []
        with _threads(self.threads if self.backend == "sklearn" else None):
            for q in QUANTILES:
                self.models.append(self._booster(q).fit(x, y))
        self.adjust, self.n_calibration = (0.0, 0.0), 0
        if x_cal is not None and y_cal is not None:
            xc, yc = _finite_rows(x_cal, y_cal)
            if len(yc):
                raw = self._raw(xc)
                self.adjust = (conformal_margin(raw[:, 0] - yc, QUANTILES[0]),
                               conformal_margin(yc - raw[:, 2], 1 - QUANTILES[2]))
                self.n_calibration = len(yc)
        return self

    def _raw(self, x: np.ndarray) -> np.ndarray:
        with _threads(self.threads if self.backend == "sklearn" else None):
            return np.column_stack([m.predict(x) for m in self.models])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Calibrated ``(n, 3)`` = p10, p50, p90 per row, monotone and ≥ 0."""
        if not self.models:
            raise RuntimeError("QuantileGBM.predict before fit")
        p = self._raw(np.asarray(x, dtype=float))
        p[:, 0] -= self.adjust[0]
        p[:, 2] += self.adjust[1]
        return np.clip(np.sort(p, axis=1), 0.0, None)


def conformal_margin(scores: np.ndarray, tail: float) -> float:
    """Split-conformal margin for one tail: the ``⌈(n+1)(1−tail)⌉ / n`` empirical quantile
    of the conformity ``scores`` (> 0 widens, < 0 narrows); ``tail`` = the miss rate allowed."""
    s = np.sort(np.asarray(scores, dtype=float)[np.isfinite(scores)])
    n = len(s)
    if n == 0:
        return 0.0
    k = math.ceil((n + 1) * (1 - tail))
    return float(s[min(k, n) - 1])


def pinball(y: np.ndarray, pred: np.ndarray, q: float) -> float:
    """Mean pinball (quantile) loss [units of y] of ``pred`` for quantile ``q`` (NaN ignored)."""
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    ok = np.isfinite(y) & np.isfinite(pred)
    d = y[ok] - pred[ok]
    return float(np.mean(np.maximum(q * d, (q - 1) * d))) if ok.any() else math.nan


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share [0..1] of finite ``y`` inside ``[lo, hi]``."""
    y, lo, hi = (np.asarray(a, float) for a in (y, lo, hi))
    ok = np.isfinite(y) & np.isfinite(lo) & np.isfinite(hi)
    return float(np.mean((y[ok] >= lo[ok]) & (y[ok] <= hi[ok]))) if ok.any() else math.nan


def _finite_rows(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(y)
    return x[ok], y[ok]


class _threads:
    """Limit OpenMP threads (scikit-learn's boosters) for a block; no-op for ``None``."""

    def __init__(self, n: int | None):
        self.n, self._ctl = n, None

    def __enter__(self):
        if self.n is not None:
            from threadpoolctl import threadpool_limits

            self._ctl = threadpool_limits(limits=self.n, user_api="openmp")
        return self

    def __exit__(self, *exc):
        if self._ctl is not None:
            self._ctl.restore_original_limits()

