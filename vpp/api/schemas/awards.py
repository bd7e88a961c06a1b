"""``/awards``: the aggregator's award of an offer and what the site accepted (kW)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from vpp.api.schemas.common import In, ts, ts_text
from vpp.api.schemas.offers import Slots
from vpp.market.ledger import LedgerRecord

RecordId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class AwardIn(In):
    offer_id: RecordId
    slots: Slots


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
        return cls(id=rec.id, offer_id=p["offer_id"], created_at=ts(rec.ts), actor=rec.actor, status=p["status"],
                   slots=[AwardSlotOut(start=ts_text(s["start"]), awarded_kw=s["awarded_w"] / 1000,
                                       accepted_kw=s["accepted_w"] / 1000, reason=s["reason"])
                          for s in p["slots"]])
