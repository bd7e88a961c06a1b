"""Dispatch instructions under an award: create, read, modify, cancel (thin routes over
:class:`vpp.market.dispatch.DispatchService`; performance is in :mod:`.baseline`).

The answer to POST/PATCH is the acknowledgement (decided synchronously, no I/O besides the
ledger): ``status`` accepted / partial / rejected with ``reasons`` from
:data:`vpp.market.dispatch.REASONS`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status

from vpp.api.deps import Awarder, IdempotencyKey, Reader
from vpp.api.schemas.dispatches import DispatchIn, DispatchOut, DispatchPatch
from vpp.market.dispatch import Dispatch, DispatchError, DispatchService

router = APIRouter(prefix="/dispatches", tags=["dispatches"])


def out(d: Dispatch, now: datetime) -> DispatchOut:
    return DispatchOut.from_dispatch(d, now)


def _svc(request: Request) -> DispatchService:
    return request.app.state.dispatch


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DispatchOut)
def create_dispatch(principal: Awarder, key: IdempotencyKey, body: Annotated[DispatchIn, Body()], request: Request,
                    response: Response) -> DispatchOut:
    svc = _svc(request)
    d, created = svc.create(principal.name, key, body.request())
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return out(d, svc.clock())


@router.get("/{dispatch_id}", response_model=DispatchOut)
def read_dispatch(dispatch_id: str, _: Reader, request: Request) -> DispatchOut:
    svc = _svc(request)
    d = svc.book.get(dispatch_id)
    if d is None:
        raise DispatchError(f"dispatch {dispatch_id!r} not found", 404, "not_found")
    return out(d, svc.clock())


@router.patch("/{dispatch_id}", response_model=DispatchOut)
def modify_dispatch(dispatch_id: str, principal: Awarder, key: IdempotencyKey, body: DispatchPatch,
                    request: Request, response: Response) -> DispatchOut:
    svc = _svc(request)
    d, created = svc.patch(principal.name, key, dispatch_id, body.change())
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return out(d, svc.clock())


@router.delete("/{dispatch_id}", response_model=DispatchOut)
def cancel_dispatch(dispatch_id: str, principal: Awarder, request: Request) -> DispatchOut:
    """Cancel (idempotent); the battery returns to the plan at the next control step."""
    svc = _svc(request)
    return out(svc.cancel(principal.name, dispatch_id), svc.clock())
