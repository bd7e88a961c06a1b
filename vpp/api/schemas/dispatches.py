"""``/dispatches``: instructions under an award (kW at this edge; W in the services).

The request body is one of three shapes, told apart by ``type`` (so the OpenAPI document
states which fields each kind needs): ``setpoint`` and ``delta`` carry ``value_kw`` (a delta
>= 0: the award gives the direction), ``soc_target`` carries ``soc_target``. The window
rules (end after start, at most 7 days) are :func:`vpp.market.dispatch.request_error`'s.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from vpp.api.schemas.awards import RecordId
from vpp.api.schemas.common import BoundedDatetime, In, ts
from vpp.market.dispatch import MAX_DISPATCH, Dispatch, DispatchChange, DispatchRequest, request_error

Kind = Literal["setpoint", "delta", "soc_target"]
PowerKw = Annotated[float, Field(ge=-1_000_000, le=1_000_000, allow_inf_nan=False,
                                 description="[kW], > 0 discharge")]
SocFraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, description="mean SoC [fraction 0..1]")]
WINDOW = f"end after start, at most {MAX_DISPATCH.days} days"


class _DispatchIn(In):
    award_id: RecordId
    start: BoundedDatetime
    end: BoundedDatetime = Field(description=WINDOW)

    @model_validator(mode="after")
    def _check(self) -> "_DispatchIn":
        value = getattr(self, "value_kw", None)
        why = request_error(self.type, self.start, self.end,  # type: ignore[attr-defined]
                            None if value is None else value * 1000, getattr(self, "soc_target", None))
        if why is not None:
            raise ValueError(why)
        return self

    def request(self) -> DispatchRequest:
        value = self.soc_target if self.type == "soc_target" else self.value_kw * 1000  # type: ignore[attr-defined]
        return DispatchRequest(self.award_id, self.type, self.start.astimezone(UTC),  # type: ignore[attr-defined]
                               self.end.astimezone(UTC), float(value))


class SetpointIn(_DispatchIn):
    type: Literal["setpoint"] = Field(description="site battery power [kW] (> 0 discharge)")
    value_kw: PowerKw
    soc_target: None = None


class DeltaIn(_DispatchIn):
    type: Literal["delta"] = Field(description="kW >= 0 on top of the plan in the award's direction")
    value_kw: Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False, description="[kW] >= 0")]
    soc_target: None = None


class SocTargetIn(_DispatchIn):
    type: Literal["soc_target"] = Field(description="mean SoC to reach by end")
    soc_target: SocFraction
    value_kw: None = None


DispatchIn = Annotated[SetpointIn | DeltaIn | SocTargetIn, Field(discriminator="type")]


class DispatchPatch(In):
    """Fields to change; the rest stay. The result is validated like a new dispatch."""

    type: Kind | None = None
    start: BoundedDatetime | None = None
    end: BoundedDatetime | None = None
    value_kw: PowerKw | None = None
    soc_target: SocFraction | None = None

    def change(self) -> DispatchChange:
        return DispatchChange(self.type, _utc(self.start), _utc(self.end),
                              None if self.value_kw is None else self.value_kw * 1000, self.soc_target)


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

    @classmethod
    def from_dispatch(cls, d: Dispatch, now: datetime) -> "DispatchOut":
        r = d.request
        sp = sum(d.last_setpoints.values()) / 1000 if d.last_setpoints else None
        return cls(id=d.id, award_id=r.award_id, type=r.kind, start=ts(r.start), end=ts(r.end),
                   value_kw=None if r.kind == "soc_target" else r.value / 1000,
                   soc_target=r.value if r.kind == "soc_target" else None, direction=d.direction,
                   status=d.status if d.status != "cancelled" else "accepted",  # type: ignore[arg-type]
                   accepted_kw=d.accepted_w / 1000, reasons=list(d.reasons),  # type: ignore[arg-type]
                   state=d.state(now), created_at=ts(d.created_at), updated_at=ts(d.updated_at),  # type: ignore[arg-type]
                   site_setpoint_kw=sp)


def _utc(t: datetime | None) -> datetime | None:
    return None if t is None else t.astimezone(UTC)
