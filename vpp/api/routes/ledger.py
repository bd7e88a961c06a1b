from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import AwareDatetime

from vpp.api.deps import LedgerDep, Operator
from vpp.market.ledger import KINDS

router = APIRouter(prefix="/ledger", tags=["ledger"])


@router.get("/export")
def export(
    _: Operator,
    ledger: LedgerDep,
    start: Annotated[AwareDatetime, Query()],
    end: Annotated[AwareDatetime, Query()],
    fmt: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
    kind: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """Settlement records with ``start <= ts < end`` as JSON or CSV."""
    if end <= start:
        raise HTTPException(422, "end must be after start")
    unknown = sorted(set(kind or []) - set(KINDS))
    if unknown:
        raise HTTPException(422, f"unknown record kind(s): {', '.join(unknown)}")
    text = ledger.export(start, end, fmt, kind)
    media = "application/json" if fmt == "json" else "text/csv; charset=utf-8"
    return Response(text, media_type=media)
