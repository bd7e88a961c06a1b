"""Dispatch performance and the settlement job that records it.

Two halves, one computation:

* :func:`dispatch_performance` — baseline against metered net import per 30-min slot of a
  dispatch window (read-only: what ``GET /dispatches/{id}/performance`` shows);
* :func:`settle_due` — the settlement job: for every dispatch whose slots are all over,
  records that computation once as a ``performance`` ledger record (``ref`` = the dispatch,
  key ``performance:<dispatch id>``, with algorithm, tariff and CO2 versions). The runtime
  schedules it; reading performance never writes.

Contract of the job
-------------------
* Due: a dispatch that was not rejected, once ``now >= due_at(d) + grace_s`` where
  ``due_at`` is the end of the last slot it instructed: the end of its window rounded up to
  a slot boundary, or, when cancelled, of the slot the cancellation fell in (whichever is
  earlier). Slots after a cancellation carry no instruction (instructed 0 W).
* Once: a dispatch with any ``performance`` record (whatever its key) is never recorded
  again, and the key ``performance:<dispatch id>`` makes a concurrent second run a replay
  of the first. So there is exactly one performance record per dispatch, covering each of
  its slots once.
* Method: ``plan`` against the plan frozen in the ledger when the dispatch was accepted
  (``baseline_plan`` record), else against the current plan when there is one, else
  ``high4of5`` over metered history.
* A dispatch whose baseline cannot be computed yet (no history, no store) is skipped and
  retried at the next run.

Units: W inside (the payload's per-slot rows), kWh for energies, s for times.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from vpp.config import SiteConfig
from vpp.market.baseline import ALGORITHM_VERSION, BaselineError, BaselineResult
from vpp.market.dispatch import Dispatch
from vpp.market.ledger import Ledger, LedgerRecord, canonical_hash
from vpp.market.half_hour_metering import HalfHourLog
from vpp.market.metering import PLAN_ALGORITHM_VERSION, Method, baseline_for, metered_import_w, versions
from vpp.market.performance import DispatchPerformance, evaluate_dispatch
from vpp.slots import ceil_time, covering

log = logging.getLogger(__name__)

#: Planned net import [W] per 30-min slot over ``[start, end)``; None without a plan.
PlanImport = Callable[[datetime, datetime], "pd.Series | None"]

ACTOR = "settlement"


class PerformanceUnavailable(LookupError):
    """Performance cannot be computed (``status`` 409: a rejected dispatch, no baseline)."""

    status = 409


@dataclass(frozen=True)
class PerformanceReport:
    """Performance of one dispatch: the baseline used, the per-slot evaluation, the
    versions a settlement names, and the ledger record once the job recorded it."""

    dispatch: Dispatch
    method: Method
    baseline: BaselineResult
    performance: DispatchPerformance
    algorithm_version: str
    tariff_version: str
    co2_version: str
    record: LedgerRecord | None = None

    def payload(self) -> dict[str, Any]:
        """The ``performance`` record's payload (per-slot rows in W, timestamps ISO UTC)."""
        d = self.dispatch
        return {"dispatch_id": d.id, "award_id": d.request.award_id, "method": self.method,
                "baseline_days": [x.isoformat() for x in self.baseline.days],
                "performance": self.performance.as_dict()}


def recorded(ledger: Ledger, dispatch_id: str) -> LedgerRecord | None:
    """The settlement's ``performance`` record of a dispatch (the first, if several were
    written by an older version), None before the job recorded it."""
    recs = ledger.query(kinds=["performance"], ref=dispatch_id)
    return recs[0] if recs else None


def due_at(d: Dispatch) -> datetime:
    """When the last slot the dispatch instructed is over (see the module docstring)."""
    end = ceil_time(d.request.end)
    if d.cancelled_at is not None:
        end = min(end, ceil_time(d.cancelled_at))
    return end


def is_due(d: Dispatch, now: datetime, grace_s: float = 0.0) -> bool:
    return d.status != "rejected" and now >= due_at(d) + timedelta(seconds=grace_s)


def _frozen_plan(ledger: Ledger, dispatch_id: str) -> pd.Series | None:
    frozen = ledger.query(kinds=["baseline_plan"], ref=dispatch_id)
    if not frozen:
        return None
    w = frozen[0].payload["import_w"]
    return pd.Series({pd.Timestamp(k): float(v) for k, v in w.items()}).sort_index()


def dispatch_performance(d: Dispatch, ledger: Ledger, store: Any, config: SiteConfig, *,
                         plan_import: PlanImport | None = None, method: Method | None = None,
                         half_hour: HalfHourLog | None = None) -> PerformanceReport:
    """Performance of ``d`` over the slots of its window (read-only).

    ``half_hour``: the smart meter's 30-minute readings, the metering of an ECHONET Lite grid
    meter (:func:`vpp.market.metering.metered_import_w`).

    ``method`` None: ``plan`` when a plan baseline exists (frozen at acceptance, else the
    current plan from ``plan_import``), else ``high4of5``. Raises
    :class:`PerformanceUnavailable` for a rejected dispatch or when no baseline can be made.
    """
    if d.status == "rejected":
        raise PerformanceUnavailable("a rejected dispatch has no performance")
    a, e = covering(d.request.start, d.request.end)
    plan_w = _frozen_plan(ledger, d.id)
    if plan_w is None and method != "high4of5" and plan_import is not None:
        plan_w = plan_import(a, e)
    if method is None:
        method = "plan" if plan_w is not None else "high4of5"
    try:
        plan_w = plan_w if method == "plan" else None
        b = baseline_for(method, config, a, e, store=store, plan_w=plan_w, half_hour=half_hour)
        actual = metered_import_w(store, config, a, e, half_hour=half_hour)
    except BaselineError as ex:
        raise PerformanceUnavailable(f"performance unavailable: {ex}") from None
    end_cut = pd.Timestamp(d.cancelled_at or d.request.end)
    instructed = pd.Series([d.accepted_w if t < end_cut else 0.0 for t in b.values.index], index=b.values.index)
    perf = evaluate_dispatch(b.values, actual, instructed, direction=d.direction)
    tv, cv = versions(config)
    algo = PLAN_ALGORITHM_VERSION if method == "plan" else ALGORITHM_VERSION
    return PerformanceReport(d, method, b, perf, algo, tv, cv, recorded(ledger, d.id))


def settle_dispatch(ledger: Ledger, report: PerformanceReport) -> LedgerRecord:
    """Record ``report`` as the dispatch's one ``performance`` record (a replay returns the
    record already there)."""
    d = report.dispatch
    old = recorded(ledger, d.id)
    if old is not None:
        return old
    rec, _ = ledger.record("performance", ACTOR, report.payload(), ref=d.id,
                           idempotency_key=f"performance:{d.id}",
                           # the key names the dispatch: a second run replays the first
                           request_hash=canonical_hash({"performance": d.id}),
                           algorithm_version=report.algorithm_version, tariff_version=report.tariff_version,
                           co2_version=report.co2_version)
    return rec


def settle_due(ledger: Ledger, store: Any, config: SiteConfig, now: datetime, dispatches: Iterable[Dispatch], *,
               plan_import: PlanImport | None = None, grace_s: float = 0.0,
               half_hour: HalfHourLog | None = None) -> list[LedgerRecord]:
    """The settlement job: record the performance of every due, not yet recorded dispatch
    (see the module docstring). Returns the records written by this run."""
    out = []
    for d in dispatches:
        if not is_due(d, now, grace_s) or recorded(ledger, d.id) is not None:
            continue
        try:
            report = dispatch_performance(d, ledger, store, config, plan_import=plan_import, half_hour=half_hour)
        except PerformanceUnavailable as e:
            log.info("dispatch %s not settled yet: %s", d.id, e)
            continue
        out.append(settle_dispatch(ledger, report))
    return out
