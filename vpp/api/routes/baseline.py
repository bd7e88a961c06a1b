"""Baselines over metered history or the plan, and dispatch performance per 30-min slot.

Read-only: the performance of a completed dispatch is recorded in the ledger by the
settlement job (:func:`vpp.market.settlement_job.settle_due`), never by a GET; the answer
says whether it has been (``recorded``, ``record_id``).
"""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from vpp.api.deps import ConfigDep, Reader, ServicesDep
from vpp.api.schemas.baseline import BaselineOut, PerformanceOut
from vpp.api.schemas.common import TimeWindow, time_window
from vpp.market.baseline import BaselineError
from vpp.market.dispatch import DispatchError
from vpp.market.metering import plan_importer, site_baseline
from vpp.market.settlement_job import PerformanceUnavailable, dispatch_performance

router = APIRouter(tags=["baseline"])


@router.get("/baseline", response_model=BaselineOut)
def read_baseline(_: Reader, request: Request, config: ConfigDep, services: ServicesDep,
                  window: Annotated[TimeWindow, Depends(time_window)],
                  method: Annotated[Literal["high4of5", "plan"], Query()] = "high4of5") -> BaselineOut:
    """Site baseline per 30-min slot (``high4of5``: ERAB High 4 of 5 / High 2 of 3 on
    holidays, same-day adjusted when metered; ``plan``: the current plan's net import)."""
    try:
        b, algo = site_baseline(method, config, window.start, window.end, store=services.store,
                                controller=services.controller, half_hour=getattr(request.app.state, "half_hour", None))
    except BaselineError as ex:
        raise HTTPException(409, f"baseline unavailable: {ex}") from None
    return BaselineOut.from_result(b, algo)


@router.get("/dispatches/{dispatch_id}/performance", response_model=PerformanceOut)
def read_performance(dispatch_id: str, _: Reader, request: Request, config: ConfigDep, services: ServicesDep,
                     method: Annotated[Literal["high4of5", "plan"] | None, Query()] = None) -> PerformanceOut:
    """Baseline vs metered net import per slot of the dispatch window. ``method`` defaults to
    the plan frozen when the dispatch was accepted, else High 4 of 5."""
    st = request.app.state
    d = st.book.get(dispatch_id)
    if d is None:
        raise DispatchError(f"dispatch {dispatch_id!r} not found", 404, "not_found")
    try:
        report = dispatch_performance(d, st.ledger, services.store, config,
                                      plan_import=plan_importer(services.controller), method=method,
                                      half_hour=getattr(st, "half_hour", None))
    except PerformanceUnavailable as ex:
        raise HTTPException(ex.status, str(ex)) from None
    return PerformanceOut.from_report(report)
