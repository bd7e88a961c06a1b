"""The PV / load scenarios a plan is made over (``optimiser.scenarios`` > 1), from the
forecast's quantiles (pure: no clock, no I/O).

Quantiles per slot, first that applies: the forecast's own p10 / p90
(``Forecast.pv_p10_w`` …, from the quantile models); else past forecast errors
(:func:`optimizer.forecast_quantiles`, as the day-ahead bids hedge); else a default relative
spread (:data:`DEFAULT_SPREAD`) so that the plan still keeps margin for a forecast that is
known to be uncertain but not how much.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

import optimizer
from vpp.config import SiteConfig
from vpp.forecast.site import Forecast

__all__ = ["DEFAULT_SPREAD", "forecast_band", "problem_scenarios"]

#: p10 / p90 as fractions of the median without quantiles or error history: PV (clouds) −40 % /
#: +25 %, load −15 % / +25 % (a house's evening load is skewed upwards).
DEFAULT_SPREAD = {"pv": (0.60, 1.25), "load": (0.85, 1.25)}


def _series(x: pd.Series | None, sel: np.ndarray) -> np.ndarray | None:
    return None if x is None else np.asarray(x.to_numpy(float)[sel], float)


def forecast_band(kind: str, p50: np.ndarray, p10: np.ndarray | None, p90: np.ndarray | None,
                  errors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(p10, p90)`` [W] of ``kind`` (``"pv"`` / ``"load"``) around ``p50``, by the rule of
    the module docstring; NaN quantiles fall back slot by slot."""
    if errors is not None and np.size(errors):
        lo_e, _, hi_e = optimizer.forecast_quantiles(errors, p50, 0.1)
    else:
        lo_f, hi_f = DEFAULT_SPREAD[kind]
        lo_e, hi_e = lo_f * p50, hi_f * p50
    lo = lo_e if p10 is None else np.where(np.isfinite(p10), p10, lo_e)
    hi = hi_e if p90 is None else np.where(np.isfinite(p90), p90, hi_e)
    return np.clip(lo, 0.0, None), np.clip(hi, 0.0, None)


def problem_scenarios(config: SiteConfig, forecast: Forecast, sel: np.ndarray, pv_w: np.ndarray,
                      load_w: np.ndarray, errors: pd.DataFrame | None = None) -> optimizer.Scenarios | None:
    """``optimiser.scenarios`` joint scenarios over the horizon slots ``sel`` of ``forecast``
    (row 0 = ``pv_w`` / ``load_w``, the medians), or None for one scenario. ``errors``: past
    forecast errors [W], columns ``pv_error_w`` / ``load_error_w`` (optional)."""
    o = config.optimiser
    if o.scenarios <= 1:
        return None

    def err(col: str) -> np.ndarray | None:
        return None if errors is None or col not in errors else errors[col].to_numpy(float)

    pv_lo, pv_hi = forecast_band("pv", pv_w, _series(forecast.pv_p10_w, sel), _series(forecast.pv_p90_w, sel),
                                 err("pv_error_w"))
    ld_lo, ld_hi = forecast_band("load", load_w, _series(forecast.load_p10_w, sel),
                                 _series(forecast.load_p90_w, sel), err("load_error_w"))
    return optimizer.sample_scenarios(pv_lo, pv_w, pv_hi, ld_lo, load_w, ld_hi, o.scenarios,
                                      slot_correlation=o.scenario_slot_correlation, seed=o.scenario_seed)
