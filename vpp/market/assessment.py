"""Assessment II data (アセスメントII): delivered kW per コマ of every dispatched slot, from the
meter's 30-min flows against the baseline, ready as soon as the コマ is over (well before the
end of the next コマ, the deadline) and exportable as rows or CSV.

Per コマ (slot of :data:`vpp.slots.SLOT_S`)::

    actual_kw    = (import_kwh − export_kwh) × 3600 / SLOT_S   (import and export metered
                   separately by :func:`vpp.storage.meter_flows.import_export_slots`)
    delivered_kw = baseline_kw − actual_kw   ("up": less import / more export)
                 = actual_kw − baseline_kw   ("down": more import)
    ready_by     = end of the next コマ (slot start + 2 × SLOT_S)

The baseline is the one the settlement uses (:func:`vpp.market.settlement_job.dispatch_performance`:
the plan frozen at acceptance, else the current plan, else High 4 of 5). A コマ without a
meter reading has ``delivered_kw`` None and status ``missing``; a dispatch whose baseline
cannot be made yet is listed in ``skipped`` with the reason. Only コマ that are over are rows.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vpp.slots import SLOT_S, covering
from vpp.timefmt import iso

__all__ = ["delivered_kw", "assessment_rows", "assessment_csv", "COLUMNS"]

COLUMNS = ("dispatch_id", "award_id", "direction", "day", "koma", "start", "end", "baseline_kw", "actual_kw",
           "instructed_kw", "delivered_kw", "status", "ready_by")


def delivered_kw(baseline_w: np.ndarray, import_kwh: np.ndarray, export_kwh: np.ndarray,
                 direction: Literal["up", "down"], slot_s: int = SLOT_S) -> tuple[np.ndarray, np.ndarray]:
    """``(actual_kw, delivered_kw)`` per slot (module docstring); NaN import/export → NaN.

    Parameters
    ----------
    baseline_w : baseline mean net import per slot [W]
    import_kwh, export_kwh : metered import / export per slot [kWh], both >= 0
    direction : "up" (reduce import) or "down" (increase import)
    """
    actual = (np.asarray(import_kwh, float) - np.asarray(export_kwh, float)) * 3600.0 / slot_s
    sign = 1.0 if direction == "up" else -1.0
    return actual, sign * (np.asarray(baseline_w, float) / 1000.0 - actual)


def _koma(t: pd.Timestamp, tz: str) -> tuple[str, int]:
    loc = t.tz_convert(ZoneInfo(tz))
    return loc.date().isoformat(), loc.hour * 2 + loc.minute // 30 + 1


def _f(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def assessment_rows(dispatches: Iterable[Any], ledger: Any, store: Any, config: Any, start: datetime,
                    end: datetime, now: datetime, *, plan_import: Any = None) -> dict[str, Any]:
    """Rows (dicts with :data:`COLUMNS`) of every コマ in ``[start, end)`` that is over at
    ``now`` and was instructed by a not-rejected dispatch, oldest first, plus ``skipped``
    (``{"dispatch_id", "reason"}``) for dispatches without a baseline yet."""
    from vpp.market.metering import grid_meter_id
    from vpp.market.settlement_job import PerformanceUnavailable, dispatch_performance
    from vpp.storage.meter_flows import import_export_slots

    a_w, e_w = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    t_now = pd.Timestamp(now).tz_convert("UTC")
    slot = pd.Timedelta(seconds=SLOT_S)
    tz = config.site.timezone
    meter = grid_meter_id(config)
    rows, skipped = [], []
    for d in dispatches:
        if d.status == "rejected":
            continue
        a, e = covering(d.request.start, d.request.end)
        if pd.Timestamp(e) <= a_w or pd.Timestamp(a) >= e_w or pd.Timestamp(a) + slot > t_now:
            continue
        try:
            rep = dispatch_performance(d, ledger, store, config, plan_import=plan_import)
        except PerformanceUnavailable as ex:
            skipped.append({"dispatch_id": d.id, "reason": str(ex)})
            continue
        perf = rep.performance.slots
        if meter is not None and store is not None and meter in store.devices():
            f = import_export_slots(store, meter, a, e).reindex(perf.index)
        else:
            f = pd.DataFrame({"import_kwh": np.nan, "export_kwh": np.nan, "samples": 0}, index=perf.index)
        unmetered = f["samples"].fillna(0).to_numpy() == 0
        imp = np.where(unmetered, np.nan, f["import_kwh"].to_numpy(float))
        exp = np.where(unmetered, np.nan, f["export_kwh"].to_numpy(float))
        actual, delivered = delivered_kw(perf["baseline_w"].to_numpy(float), imp, exp, d.direction)
        for k, t in enumerate(perf.index):
            if not (a_w <= t < e_w) or t + slot > t_now or perf["instructed_w"].iloc[k] <= 0:
                continue  # outside the window, not over yet, or nothing instructed (after a cancel)
            day, koma = _koma(t, tz)
            rows.append({"dispatch_id": d.id, "award_id": d.request.award_id, "direction": d.direction,
                         "day": day, "koma": koma, "start": iso(t.to_pydatetime()), "end": iso((t + slot).to_pydatetime()),
                         "baseline_kw": _f(perf["baseline_w"].iloc[k] / 1000.0), "actual_kw": _f(actual[k]),
                         "instructed_kw": _f(perf["instructed_w"].iloc[k] / 1000.0), "delivered_kw": _f(delivered[k]),
                         "status": "missing" if unmetered[k] else "ok",
                         "ready_by": iso((t + 2 * slot).to_pydatetime())})
    rows.sort(key=lambda r: (r["start"], r["dispatch_id"]))
    return {"rows": rows, "skipped": skipped}


def assessment_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV (header :data:`COLUMNS`, empty cell for a missing value)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r[k] is None else r[k]) for k in COLUMNS})
    return buf.getvalue()
