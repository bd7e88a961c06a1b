"""Quantile load forecast benchmark: the gradient-boosted quantile model vs today's profile
forecast, on a synthetic weather-driven year, in the same run.

Data (``simulators/synthetic_load.py``, seeded): a year of 15-min temperature (truth and a
forecast with AR(1) error, σ 1.5 K) and the load of a 40-home site driven by it (heating
below 16 °C, cooling above 24 °C, day types with Japanese holidays, per-home and site-wide
noise). Held out: ``--days`` test days spread evenly over days 70–364; each is forecast at
its local midnight for the 96 slots of the day, from the history before it (rolling origin:
the model is refitted for each test day on its 56 days before, exactly as the service's
per-day cache does; the temperature of the test day is the *forecast*, not the truth).

Figures:

* pinball loss per quantile [W] of the model and of the profile fallback (today's profile
  forecast as p50, p10/p90 from its errors on the 7 days before), ``pinball_ratio`` = model
  p50 ÷ profile p50 (< 1: the model is better);
* ``coverage_p10_p90``: share of held-out slots inside the model's p10–p90 (nominal 0.80);
* ``train_s``: median wall time of one site fit (+ its forecast); ``predict_s_site``: a
  cached forecast; ``train_s_homes`` / ``predict_s_721_homes``: the pooled home model fitted
  on 48 of 721 homes, and one day-ahead forecast of all 721 homes, with their coverage;
* ``backends``: LightGBM vs scikit-learn's HistGradientBoostingRegressor on one test day and
  the homes, same data, same run (the choice of back-end rests on these).

Usage: ``.venv/bin/python bench/forecast.py [--json] [--days N] [--homes N]``; ``--json`` prints
one JSON line on stdout (the headline keys, then ``detail``); logs go to stderr.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/ocpp.py would shadow the ocpp library
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from simulators.synthetic_load import synthetic_homes, synthetic_site, synthetic_weather  # noqa: E402
from vpp.forecast import quantile_load as ql  # noqa: E402
from vpp.forecast.quantile_gbm import QUANTILES, coverage, pinball  # noqa: E402

log = logging.getLogger("bench.forecast")
TZ = "Asia/Tokyo"
STEP = pd.Timedelta("15min")


def temperature_at(weather: pd.DataFrame, issue: pd.Timestamp) -> pd.Series:
    """Truth before ``issue``, the forecast from it on (what a forecaster has at ``issue``)."""
    t = weather["temp_air"].copy()
    later = t.index >= issue
    t[later] = weather["temp_forecast"][later]
    return t


def site_run(weather: pd.DataFrame, site: pd.Series, days: list[int], backend: str = "lightgbm") -> dict:
    ys, model, prof, fit_s, pred_s = [], [], [], [], []
    for d in days:
        t0 = weather.index[0] + pd.Timedelta(days=d)
        idx = pd.date_range(t0, periods=96, freq=STEP)
        hist, temp = site[site.index < t0], temperature_at(weather, t0)
        a = time.perf_counter()
        q = ql.site_load_quantiles(hist, idx, TZ, temp, backend=backend)
        b = time.perf_counter()
        ql.site_load_quantiles(hist, idx, TZ, temp, backend=backend)  # cached: the forecast alone
        c = time.perf_counter()
        fit_s.append(b - a)
        pred_s.append(c - b)
        if not q.from_model:
            raise RuntimeError(f"day {d}: {q.basis}")
        p = ql.profile_quantiles(hist, idx, TZ, 10_000.0, "baseline")
        ys.append(site.reindex(idx).to_numpy())
        model.append(np.column_stack([q.p10, q.p50, q.p90]))
        prof.append(np.column_stack([p.p10, p.p50, p.p90]))
        log.info("day %d: model p50 pinball %.0f W, profile %.0f W, fit %.2f s", d,
                 pinball(ys[-1], q.p50, 0.5), pinball(ys[-1], p.p50, 0.5), b - a)
    y, m, p = np.concatenate(ys), np.vstack(model), np.vstack(prof)
    names = [f"p{int(q * 100)}" for q in QUANTILES]
    return {
        "pinball_w": {n: round(pinball(y, m[:, i], q), 1) for i, (n, q) in enumerate(zip(names, QUANTILES))},
        "pinball_profile_w": {n: round(pinball(y, p[:, i], q), 1) for i, (n, q) in enumerate(zip(names, QUANTILES))},
        "coverage_p10_p90": round(coverage(y, m[:, 0], m[:, 2]), 4),
        "coverage_profile_band": round(coverage(y, p[:, 0], p[:, 2]), 4),
        "train_s": round(statistics.median(fit_s), 4),
        "predict_s_site": round(statistics.median(pred_s), 4),
        "slots": int(np.isfinite(y).sum()),
    }


def homes_run(homes: pd.DataFrame, weather: pd.DataFrame, test_days: int = 3, backend: str = "lightgbm") -> dict:
    """Fit the pooled model on the history before the first test day, forecast every home for
    each test day (rolling issue, same model)."""
    first = pd.Timestamp(homes.index[-1]).tz_convert(TZ).normalize().tz_convert("UTC") - pd.Timedelta(days=test_days - 1)
    temp = temperature_at(weather, first)
    a = time.perf_counter()
    model = ql.HomeLoadModel(TZ, backend=backend).fit(homes[homes.index >= first - pd.Timedelta(days=56)],
                                                      temp, first, STEP)
    fit_s = time.perf_counter() - a
    ys, lo, hi, pred_s = [], [], [], []
    for k in range(test_days):
        t0 = first + pd.Timedelta(days=k)
        idx = pd.date_range(t0, periods=96, freq=STEP)
        a = time.perf_counter()
        q = model.predict(homes[homes.index < t0], idx, temperature_at(weather, t0))
        pred_s.append(time.perf_counter() - a)
        ys.append(homes.reindex(idx).to_numpy().T.ravel())
        lo.append(q.p10.to_numpy().T.ravel())
        hi.append(q.p90.to_numpy().T.ravel())
    y = np.concatenate(ys)
    return {"homes": homes.shape[1], "train_s": round(fit_s, 3), "predict_s": round(statistics.median(pred_s), 3),
            "coverage_p10_p90": round(coverage(y, np.concatenate(lo), np.concatenate(hi)), 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--days", type=int, default=30, help="held-out test days (default 30)")
    ap.add_argument("--homes", type=int, default=721)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")

    weather = synthetic_weather(days=365, seed=0)
    site = synthetic_site(weather, homes=40)
    days = [int(round(d)) for d in np.linspace(70, 364, args.days)]
    log.info("site: %d test days", len(days))
    res = site_run(weather, site, days)
    log.info("homes: %d homes, last 70 days", args.homes)
    recent = weather.iloc[-70 * 96:]
    homes = synthetic_homes(recent, args.homes, seed=5)
    res_h = homes_run(homes, weather)
    log.info("backends on one day + homes")
    one = days[len(days) // 2: len(days) // 2 + 1]
    backends = {}
    for b in ("lightgbm", "sklearn"):
        ql._cache.clear()  # time a fit, not the cache
        r = site_run(weather, site, one, backend=b)
        h = homes_run(homes, weather, test_days=1, backend=b)
        backends[b] = {"site_train_s": r["train_s"], "site_predict_s": r["predict_s_site"],
                       "site_pinball_p50_w": r["pinball_w"]["p50"], "homes_train_s": h["train_s"],
                       "homes_predict_s": h["predict_s"], "homes_coverage": h["coverage_p10_p90"]}
    out = {
        "pinball_p50": res["pinball_w"]["p50"],
        "pinball_profile": res["pinball_profile_w"]["p50"],
        "pinball_ratio": round(res["pinball_w"]["p50"] / res["pinball_profile_w"]["p50"], 4),
        "coverage_p10_p90": res["coverage_p10_p90"],
        "train_s": res["train_s"],
        "predict_s_721_homes": res_h["predict_s"],
    }
    detail = {"site": res, "homes": res_h, "backends": backends, "test_days": days,
              "load_avg_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps({**out, "detail": detail}))
    else:
        print(json.dumps(detail, indent=1))
        for k, v in out.items():
            print(f"{k:22s} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
