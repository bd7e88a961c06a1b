from __future__ import annotations

from fastapi import APIRouter, Response, status

from vpp.api import access
from vpp.api.deps import Awarder, IdempotencyKey, MarketDep, Reader
from vpp.api.schemas.offers import OfferIn, OfferOut

router = APIRouter(prefix="/offers", tags=["offers"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=OfferOut)
def create_offer(principal: Awarder, key: IdempotencyKey, body: OfferIn, market: MarketDep,
                 response: Response) -> OfferOut:
    written = market.submit_offer(
        principal.name, key, [s.amount() for s in body.slots],
        direction=body.direction, product=body.product, price_per_kwh=body.price_per_kwh,
        pooled=body.pooled, dispatch=body.dispatch, override=body.override,
    )
    if not written.created:
        response.headers["Idempotent-Replayed"] = "true"
    return OfferOut.from_record(written.record)


@router.get("/{offer_id}", response_model=OfferOut)
def read_offer(offer_id: str, p: Reader, market: MarketDep) -> OfferOut:
    """The offer; its price only for roles that may read bids (:mod:`vpp.api.access`)."""
    out = OfferOut.from_record(market.get_offer(offer_id))
    changes = {"actor": access.shown_actor(out.actor, p.name, p.role)}
    if not access.sees_prices(p.role):
        changes["price_per_kwh"] = None
    return out.model_copy(update=changes)
