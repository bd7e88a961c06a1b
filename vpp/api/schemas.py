"""Request and response bodies of the HTTP API (kW at this edge; W inside).

Shape checks live here (30-min boundaries, ordering, window length, non-negative finite
amounts); rules that need state or the clock (past windows, unknown ids, award ≤ offer,
deliverability) live in :mod:`vpp.market.offers`.
"""
from __future__ import annotations

from datetime import UTC
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from vpp.market.ledger import LedgerRecord
from vpp.market.offers import MAX_WINDOW, SLOT

MAX_SLOTS = int(MAX_WINDOW / SLOT)
Kw = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False, description="[kW]")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlotIn(_In):
    start: Annotated[AwareDatetime, Field(description="slot start, ISO 8601 with offset, on :00 or :30")]
    capacity_kw: Kw

    @field_validator("start")
    @classmethod
    def _boundary(cls, v):
        if v.timestamp() % SLOT.total_seconds():
            raise ValueError("slot start must be on a 30-minute boundary")
        return v.astimezone(UTC)


def _check_window(slots: list[SlotIn]) -> list[SlotIn]:
    starts = sorted(s.start for s in slots)
    if len(set(starts)) != len(starts):
        raise ValueError("slot starts must be unique")
    if starts[-1] + SLOT - starts[0] > MAX_WINDOW:
        raise ValueError(f"window must not exceed {MAX_WINDOW.days} days")
    return sorted(slots, key=lambda s: s.start)


class OfferIn(_In):
    direction: Literal["up", "down"] = "up"
    product: Annotated[str | None, Field(max_length=64)] = None
    price_per_kwh: Annotated[float | None, Field(ge=0, allow_inf_nan=False)] = None
    slots: Annotated[list[SlotIn], Field(min_length=1, max_length=MAX_SLOTS)]

    @field_validator("slots")
    @classmethod
    def _window(cls, v: list[SlotIn]) -> list[SlotIn]:
        return _check_window(v)


class AwardIn(_In):
    offer_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    slots: Annotated[list[SlotIn], Field(min_length=1, max_length=MAX_SLOTS)]

    @field_validator("slots")
    @classmethod
    def _window(cls, v: list[SlotIn]) -> list[SlotIn]:
        return _check_window(v)


class Window(BaseModel):
    start: str
    end: str


class OfferSlotOut(BaseModel):
    start: str
    capacity_kw: float


class OfferOut(BaseModel):
    id: str
    created_at: str
    actor: str
    direction: str
    product: str | None
    price_per_kwh: float | None
    window: Window
    slots: list[OfferSlotOut]

    @classmethod
    def from_record(cls, rec: LedgerRecord) -> "OfferOut":
        p = rec.payload
        return cls(id=rec.id, created_at=_ts(rec), actor=rec.actor, direction=p["direction"],
                   product=p["product"], price_per_kwh=p["price_per_kwh"], window=Window(**p["window"]),
                   slots=[OfferSlotOut(start=s["start"], capacity_kw=s["power_w"] / 1000) for s in p["slots"]])


class AwardSlotOut(BaseModel):
    start: str
    awarded_kw: float
    accepted_kw: float
    reason: str = Field(description="empty when fully accepted; 'reserve_floor' when limited by the reserve")


class AwardOut(BaseModel):
    id: str
    offer_id: str
    created_at: str
    actor: str
    status: Literal["accepted", "partial", "refused"]
    slots: list[AwardSlotOut]

    @classmethod
    def from_record(cls, rec: LedgerRecord) -> "AwardOut":
        p = rec.payload
        return cls(id=rec.id, offer_id=p["offer_id"], created_at=_ts(rec), actor=rec.actor, status=p["status"],
                   slots=[AwardSlotOut(start=s["start"], awarded_kw=s["awarded_w"] / 1000,
                                       accepted_kw=s["accepted_w"] / 1000, reason=s["reason"])
                          for s in p["slots"]])


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    site: str
    version: str


def _ts(rec: LedgerRecord) -> str:
    return rec.ts.isoformat().replace("+00:00", "Z")

