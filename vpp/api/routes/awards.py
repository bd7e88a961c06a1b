from __future__ import annotations

from fastapi import APIRouter, Response, status

from vpp.api import access
from vpp.api.deps import Awarder, IdempotencyKey, MarketDep, Reader
from vpp.api.schemas.awards import AwardIn, AwardOut

router = APIRouter(prefix="/awards", tags=["awards"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AwardOut)
def create_award(principal: Awarder, key: IdempotencyKey, body: AwardIn, market: MarketDep,
                 response: Response) -> AwardOut:
    written = market.award(principal.name, key, body.offer_id,
                           [s.amount() for s in body.slots])
    if not written.created:
        response.headers["Idempotent-Replayed"] = "true"
    return AwardOut.from_record(written.record)


@router.get("/{award_id}", response_model=AwardOut)
def read_award(award_id: str, p: Reader, market: MarketDep) -> AwardOut:
    out = AwardOut.from_record(market.get_award(award_id))
    return out.model_copy(update={"actor": access.shown_actor(out.actor, p.name, p.role)})
