"""``/offers``: the site's offer to the aggregator (kW at this edge; W in the ledger)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from vpp.api.schemas.common import MAX_SLOTS, MAX_WINDOW, In, Kw, SlotStart, Window, ts, ts_text
from vpp.market.ledger import LedgerRecord
from vpp.market.offers import SlotAmount
from vpp.slots import SLOT


class SlotIn(In):
    start: SlotStart
    capacity_kw: Kw

    def amount(self) -> SlotAmount:
        return SlotAmount(self.start, self.capacity_kw * 1000)


def check_window(slots: list[SlotIn]) -> list[SlotIn]:
    """Unique starts within :data:`MAX_WINDOW`, sorted by start."""
    starts = sorted(s.start for s in slots)
    if len(set(starts)) != len(starts):
        raise ValueError("slot starts must be unique")
    if starts[-1] + SLOT - starts[0] > MAX_WINDOW:
        raise ValueError(f"window must not exceed {MAX_WINDOW.days} days")
    return sorted(slots, key=lambda s: s.start)


Slots = Annotated[list[SlotIn], Field(min_length=1, max_length=MAX_SLOTS,
                                      description=f"unique slot starts within {MAX_WINDOW.days} days"),
                  AfterValidator(check_window)]


class OfferIn(In):
    direction: Literal["up", "down"] = "up"
    product: Annotated[str | None, Field(max_length=64)] = None
    price_per_kwh: Annotated[float | None, Field(ge=0, allow_inf_nan=False)] = None
    #: a list-pattern contribution: the EPRX minimum lot is met by the aggregator's pool
    pooled: bool = True
    dispatch: Literal["dedicated_line", "simplified"] | None = None
    #: offer slots above the deliverable (pessimistic) kW anyway; the reason is recorded
    override: Annotated[str | None, Field(min_length=3, max_length=200)] = None
    slots: Slots


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
    override: dict | None = None

    @classmethod
    def from_record(cls, rec: LedgerRecord) -> "OfferOut":
        p = rec.payload
        return cls(id=rec.id, created_at=ts(rec.ts), actor=rec.actor, direction=p["direction"],
                   product=p["product"], price_per_kwh=p["price_per_kwh"],
                   window=Window(start=ts_text(p["window"]["start"]), end=ts_text(p["window"]["end"])),
                   slots=[OfferSlotOut(start=ts_text(s["start"]), capacity_kw=s["power_w"] / 1000)
                          for s in p["slots"]], override=p.get("override"))
