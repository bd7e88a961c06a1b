from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from vpp.api.deps import LedgerDep, Operator
from vpp.api.schemas.common import MAX_EXPORT_WINDOW, TimeWindow, window_query
from vpp.api.schemas.ledger import ExportFormat, RecordKind

router = APIRouter(prefix="/ledger", tags=["ledger"])


@router.get("/export")
def export(
    _: Operator,
    ledger: LedgerDep,
    window: Annotated[TimeWindow, Depends(window_query(MAX_EXPORT_WINDOW))],
    fmt: Annotated[ExportFormat, Query(alias="format")] = "json",
    kind: Annotated[list[RecordKind] | None, Query()] = None,
) -> Response:
    """Settlement records with ``start <= ts < end`` as JSON or CSV."""
    text = ledger.export(window.start, window.end, fmt, kind)
    media = "application/json" if fmt == "json" else "text/csv; charset=utf-8"
    return Response(text, media_type=media)
