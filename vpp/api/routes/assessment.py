"""``/assessment``: Assessment II data (per-コマ delivered kW of every dispatched コマ that is
over) as JSON or CSV, for the operator and the aggregator; the arithmetic is
:mod:`vpp.market.assessment`. A bad window (``end`` not after ``start``, too long, no offset)
is 422 naming the field; an unreadable store 503."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from vpp.api.deps import Caller, ConfigDep, ServicesDep
from vpp.api.schemas.common import TimeWindow, time_window
from vpp.market.assessment import assessment_csv, assessment_rows
from vpp.market.metering import plan_importer
from vpp.storage.base import StorageError

router = APIRouter(prefix="/assessment", tags=["assessment"])
Window = Annotated[TimeWindow, Depends(time_window)]


def _rows(request: Request, config, services, window: TimeWindow) -> dict[str, Any]:
    st = request.app.state
    try:
        return assessment_rows(list(st.book.dispatches.values()), st.ledger, services.store, config,
                               window.start, window.end, services.now(),
                               plan_import=plan_importer(services.controller))
    except StorageError as e:
        raise HTTPException(503, f"telemetry store unavailable: {e}") from None


@router.get("")
def read_assessment(_: Caller, request: Request, config: ConfigDep, services: ServicesDep,
                    window: Window) -> dict[str, Any]:
    """Delivered kW per コマ (baseline − metered net import, sign by direction) of the
    dispatched コマ in ``[start, end)`` that are over; ``ready_by`` is the end of the next コマ."""
    return _rows(request, config, services, window)


@router.get(".csv", response_class=Response)
def read_assessment_csv(_: Caller, request: Request, config: ConfigDep, services: ServicesDep,
                        window: Window) -> Response:
    """The same rows as CSV (UTF-8, one header line)."""
    out = _rows(request, config, services, window)
    return Response(assessment_csv(out["rows"]), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="assessment.csv"'})
