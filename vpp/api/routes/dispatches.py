"""Dispatch instructions under an award: create, read, modify, cancel, performance.

The answer to POST/PATCH is the acknowledgement (decided synchronously, no I/O besides the
ledger): ``status`` accepted / partial / rejected with ``reasons`` from
:data:`vpp.market.dispatch.REASONS`.
"""
from __future__ import annotations

from datetime import UTC
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from vpp.api.deps import Awarder, IdempotencyKey, Reader
from vpp.market.dispatch import Dispatch, DispatchError, DispatchRequest, DispatchService

router = APIRouter(prefix="/dispatches", tags=["dispatches"])

Kind = Literal["setpoint", "delta", "soc_target"]


class DispatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    award_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    type: Kind = Field(description="setpoint: site battery kW (> 0 discharge); delta: kW >= 0 on top of the "
                                   "plan in the award's direction; soc_target: mean SoC to reach by end")
    start: AwareDatetime
    end: AwareDatetime
    value_kw: Annotated[float | None, Field(ge=-1_000_000, le=1_000_000, allow_inf_nan=False)] = None
    soc_target: Annotated[float | None, Field(ge=0, le=1, allow_inf_nan=False)] = None

    @model_validator(mode="after")
    def _check(self) -> "DispatchIn":
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if (self.end - self.start).total_seconds() > 7 * 86400:
            raise ValueError("window must not exceed 7 days")
        if self.type == "soc_target":
            if self.soc_target is None or self.value_kw is not None:
                raise ValueError("soc_target needs soc_target (and no value_kw)")
        elif self.value_kw is None or self.soc_target is not None:
            raise ValueError(f"{self.type} needs value_kw (and no soc_target)")
        if self.type == "delta" and self.value_kw is not None and self.value_kw < 0:
            raise ValueError("delta value_kw must be >= 0 (the award gives the direction)")
        return self

    def request(self) -> DispatchRequest:
        value = self.soc_target if self.type == "soc_target" else self.value_kw * 1000  # type: ignore[operator]
        return DispatchRequest(self.award_id, self.type, self.start.astimezone(UTC), self.end.astimezone(UTC),
                               float(value))  # type: ignore[arg-type]


class DispatchPatch(BaseModel):
    """Fields to change; the rest stay. The result is validated like a new dispatch."""

    model_config = ConfigDict(extra="forbid")
    type: Kind | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    value_kw: Annotated[float | None, Field(ge=-1_000_000, le=1_000_000, allow_inf_nan=False)] = None
    soc_target: Annotated[float | None, Field(ge=0, le=1, allow_inf_nan=False)] = None


class DispatchOut(BaseModel):
    id: str
    award_id: str
    type: Kind
    start: str
    end: str
    value_kw: float | None
    soc_target: float | None
    direction: Literal["up", "down"]
    status: Literal["accepted", "partial", "rejected"]
    accepted_kw: float = Field(description="power the site commits to [kW] (soc_target: the power cap)")
    reasons: list[Literal["reserve_floor", "storm_mode", "device_unavailable", "outside_award"]]
    state: Literal["pending", "active", "completed", "cancelled", "rejected"]
    created_at: str
    updated_at: str
    site_setpoint_kw: float | None = Field(None, description="last site battery setpoint it produced [kW]")


def _iso(t) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def out(d: Dispatch, now) -> DispatchOut:
    r = d.request
    sp = sum(d.last_setpoints.values()) / 1000 if d.last_setpoints else None
    return DispatchOut(id=d.id, award_id=r.award_id, type=r.kind, start=_iso(r.start), end=_iso(r.end),
                       value_kw=None if r.kind == "soc_target" else r.value / 1000,
                       soc_target=r.value if r.kind == "soc_target" else None, direction=d.direction,
                       status=d.status if d.status != "cancelled" else "accepted",  # type: ignore[arg-type]
                       accepted_kw=d.accepted_w / 1000, reasons=list(d.reasons),  # type: ignore[arg-type]
                       state=d.state(now), created_at=_iso(d.created_at), updated_at=_iso(d.updated_at),
                       site_setpoint_kw=sp)


def _svc(request: Request) -> DispatchService:
    return request.app.state.dispatch


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DispatchOut)
def create_dispatch(principal: Awarder, key: IdempotencyKey, body: DispatchIn, request: Request,
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
    d = svc.book.get(dispatch_id)
    if d is None:
        raise DispatchError(f"dispatch {dispatch_id!r} not found", 404, "not_found")
    r = d.request
    kind = body.type or r.kind
    merged = {"award_id": r.award_id, "type": kind, "start": body.start or r.start, "end": body.end or r.end}
    if kind == "soc_target":
        merged["soc_target"] = body.soc_target if body.soc_target is not None else \
            (r.value if r.kind == "soc_target" else None)
    else:
        merged["value_kw"] = body.value_kw if body.value_kw is not None else \
            (r.value / 1000 if r.kind != "soc_target" else None)
    try:
        new = DispatchIn(**merged)
    except ValueError as e:
        raise DispatchError(f"modified dispatch is invalid: {e}".splitlines()[0]) from None
    d, created, verdict = svc.modify(principal.name, key, dispatch_id, new.request())
    if verdict.status == "rejected":
        raise DispatchError(f"modification rejected ({', '.join(verdict.reasons)}): {verdict.detail}; "
                            "the dispatch is unchanged", 409, "modification_rejected")
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return out(d, svc.clock())


@router.delete("/{dispatch_id}", response_model=DispatchOut)
def cancel_dispatch(dispatch_id: str, principal: Awarder, request: Request) -> DispatchOut:
    """Cancel (idempotent); the battery returns to the plan at the next control step."""
    svc = _svc(request)
    return out(svc.cancel(principal.name, dispatch_id), svc.clock())
