"""Baselines over metered history or the plan, and dispatch performance per 30-min slot.

Performance of a completed dispatch is recorded in the ledger (``performance``, ref = the
dispatch) with algorithm, tariff and CO2 versions; reading it again with the same inputs
returns the same record.
"""
from __future__ import annotations

from datetime import UTC
from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from vpp.api.deps import Reader
from vpp.config import SiteConfig
from vpp.market.baseline import ALGORITHM_VERSION, BaselineError
from vpp.market.dispatch import DispatchError
from vpp.market.ledger import canonical_hash
from vpp.market.metering import (
    PLAN_ALGORITHM_VERSION,
    baseline_for,
    metered_import_w,
    plan_import_w,
    slot_window,
    versions,
)
from vpp.market.performance import evaluate_dispatch

router = APIRouter(tags=["baseline"])


class BaselineSlot(BaseModel):
    start: str
    baseline_kw: float = Field(description="mean net grid import [kW]")


class BaselineOut(BaseModel):
    method: str
    algorithm_version: str
    days: list[str]
    adjustment_kw: float
    slots: list[BaselineSlot]


class PerfSlot(BaseModel):
    start: str
    baseline_kw: float
    metered_kw: float | None
    instructed_kw: float
    delivered_kw: float
    delivered_kwh: float
    compliance: float | None


class PerformanceOut(BaseModel):
    dispatch_id: str
    method: str
    direction: str
    delivered_kwh: float
    instructed_kwh: float
    mean_delivered_kw: float
    compliance_ratio: float | None
    missing_slots: list[str]
    slots: list[PerfSlot]
    recorded: bool = Field(description="true once the dispatch is over and the result is in the ledger")
    record_id: str | None
    algorithm_version: str
    tariff_version: str
    co2_version: str


def _iso(t) -> str:
    return pd.Timestamp(t).tz_convert("UTC").isoformat().replace("+00:00", "Z")


def _plan_series(request: Request, start, end) -> pd.Series | None:
    return plan_import_w(getattr(request.app.state.services, "controller", None), start, end)


@router.get("/baseline", response_model=BaselineOut)
def read_baseline(_: Reader, request: Request, start: Annotated[AwareDatetime, Query()],
                  end: Annotated[AwareDatetime, Query()],
                  method: Annotated[Literal["high4of5", "plan"], Query()] = "high4of5") -> BaselineOut:
    """Site baseline per 30-min slot (``high4of5``: ERAB High 4 of 5 / High 2 of 3 on
    holidays, same-day adjusted when metered; ``plan``: the current plan's net import)."""
    if end <= start or (end - start).total_seconds() > 7 * 86400:
        raise HTTPException(422, "need start < end and at most 7 days")
    a, e = slot_window(start.astimezone(UTC), end.astimezone(UTC))
    cfg: SiteConfig = request.app.state.config
    try:
        b = baseline_for(method, cfg, a, e, store=getattr(request.app.state.services, "store", None),
                         plan_w=_plan_series(request, a, e) if method == "plan" else None)
    except BaselineError as ex:
        raise HTTPException(409, f"baseline unavailable: {ex}") from None
    return BaselineOut(method=b.method, algorithm_version=PLAN_ALGORITHM_VERSION if method == "plan" else b.algorithm_version,
                       days=[d.isoformat() for d in b.days], adjustment_kw=b.adjustment / 1000,
                       slots=[BaselineSlot(start=_iso(t), baseline_kw=float(v) / 1000) for t, v in b.values.items()])


@router.get("/dispatches/{dispatch_id}/performance", response_model=PerformanceOut)
def read_performance(dispatch_id: str, _: Reader, request: Request,
                     method: Annotated[Literal["high4of5", "plan"] | None, Query()] = None) -> PerformanceOut:
    """Baseline vs metered net import per slot of the dispatch window. ``method`` defaults to
    the plan frozen when the dispatch was accepted, else High 4 of 5."""
    st = request.app.state
    d = st.book.get(dispatch_id)
    if d is None:
        raise DispatchError(f"dispatch {dispatch_id!r} not found", 404, "not_found")
    if d.status == "rejected":
        raise HTTPException(409, "a rejected dispatch has no performance")
    cfg: SiteConfig = st.config
    a, e = slot_window(d.request.start, d.request.end)
    frozen = [r for r in st.ledger.query(kinds=["baseline_plan"], ref=dispatch_id)]
    method = method or ("plan" if frozen or _plan_series(request, a, e) is not None else "high4of5")
    try:
        if method == "plan" and frozen:
            w = frozen[0].payload["import_w"]
            plan_w = pd.Series({pd.Timestamp(k): float(v) for k, v in w.items()}).sort_index()
        else:
            plan_w = _plan_series(request, a, e) if method == "plan" else None
        b = baseline_for(method, cfg, a, e, store=getattr(st.services, "store", None), plan_w=plan_w)
        actual = metered_import_w(getattr(st.services, "store", None), cfg, a, e)
    except BaselineError as ex:
        raise HTTPException(409, f"performance unavailable: {ex}") from None
    end_cut = d.cancelled_at or d.request.end
    instructed = pd.Series([d.accepted_w if t < pd.Timestamp(end_cut) else 0.0 for t in b.values.index],
                           index=b.values.index)
    perf = evaluate_dispatch(b.values, actual, instructed, direction=d.direction)
    algo = PLAN_ALGORITHM_VERSION if method == "plan" else ALGORITHM_VERSION
    tv, cv = versions(cfg)
    summary = perf.as_dict()
    rec_id, recorded = None, False
    if st.dispatch.clock() >= d.request.end or d.cancelled_at is not None:
        payload = {"dispatch_id": d.id, "award_id": d.request.award_id, "method": method,
                   "baseline_days": [x.isoformat() for x in b.days], "performance": summary}
        rec, _ = st.ledger.record("performance", "settlement", payload, ref=d.id,
                                  idempotency_key=f"performance:{d.id}:{canonical_hash(payload)[:16]}",
                                  algorithm_version=algo, tariff_version=tv, co2_version=cv)
        rec_id, recorded = rec.id, True
    rows = []
    for t, r in perf.slots.iterrows():
        rows.append(PerfSlot(start=_iso(t), baseline_kw=r["baseline_w"] / 1000,
                             metered_kw=None if pd.isna(r["actual_w"]) else r["actual_w"] / 1000,
                             instructed_kw=r["instructed_w"] / 1000, delivered_kw=r["delivered_w"] / 1000,
                             delivered_kwh=r["delivered_kwh"], compliance=None if pd.isna(r["ratio"]) else r["ratio"]))
    return PerformanceOut(dispatch_id=d.id, method=method, direction=d.direction,
                          delivered_kwh=perf.delivered_kwh, instructed_kwh=perf.instructed_kwh,
                          mean_delivered_kw=perf.mean_delivered_kw, compliance_ratio=summary["compliance_ratio"],
                          missing_slots=summary["missing_slots"], slots=rows, recorded=recorded, record_id=rec_id,
                          algorithm_version=algo, tariff_version=tv, co2_version=cv)
