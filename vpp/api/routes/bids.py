"""``GET /bids?day=YYYY-MM-DD``: the site's day-ahead offer per 30-min slot;
``POST /bids/prices``: the aggregator's expected prices per slot for a day.

Thin routers over :func:`vpp.market.bid_inputs.site_bid` (inputs from the running services
and the price precedence) and :func:`vpp.market.bids.record_prices`. Aggregator and
operator only, not viewers (commercial information). Site-level aggregates only. A bad day
(not a date, in the past, after tomorrow) or bad prices (wrong day, off the 30-min grid,
negative) → 422 with the reason; no plan → 503.
"""
from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AfterValidator
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from vpp.api.deps import ConfigDep, IdempotencyKey, LedgerDep, ServicesDep, Caller
from vpp.api.schemas.bids import BidPricesIn, BidPricesOut, BidsOut, ErrorOut
from vpp.api.schemas.common import in_range, ts
from vpp.market.bid_inputs import BidCache, prepared_bid
from vpp.market.bids import BidError, BidResult, record_prices

router = APIRouter(tags=["bids"])

# who may call which route: vpp.api.access
BidParty = Caller


def to_out(res: BidResult, currency: str, prices_source: str = "config") -> BidsOut:
    return BidsOut.from_result(res, currency, prices_source)


@router.get("/bids", response_model=BidsOut,
            responses={503: {"model": ErrorOut, "description": "no plan could be made"}})
async def read_bids(_: BidParty, request: Request, config: ConfigDep, services: ServicesDep, ledger: LedgerDep,
                    day: Annotated[date, AfterValidator(in_range),
                                   Query(description="bid day YYYY-MM-DD in the site time zone (today or tomorrow)")]
                    ) -> BidsOut:
    """The offer per 30-min slot of ``day``, co-optimised with the site's energy plan
    (422 with the reason for a bad day or bad prices). Cached per day and inputs version,
    concurrent identical requests share one computation (:class:`vpp.market.bid_inputs.BidCache`)."""
    cache: BidCache = request.app.state.bid_cache
    try:
        key, compute = await run_in_threadpool(prepared_bid, config, services, ledger, day)
        res, source = await cache.get(key, compute)
    except BidError as e:
        raise HTTPException(e.status, str(e)) from None
    return BidsOut.from_result(res, config.tariff.currency, source)


@router.post("/bids/prices", status_code=status.HTTP_201_CREATED, response_model=BidPricesOut)
def post_bid_prices(principal: BidParty, key: IdempotencyKey, body: BidPricesIn, config: ConfigDep,
                    services: ServicesDep, ledger: LedgerDep, response: Response) -> BidPricesOut:
    """Expected prices per 30-min slot of ``day`` (recorded in the ledger; the latest posted
    for a day are what ``GET /bids`` uses). Slots left out get no offer. 422 with the reason
    for a bad day or prices for another day."""
    try:
        rec, created = record_prices(ledger, principal.name, key, body.day, [s.model_dump() for s in body.slots],
                                     now=services.now(), tz=config.site.timezone)
    except BidError as e:
        raise HTTPException(e.status, str(e)) from None
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return BidPricesOut(id=rec.id, day=body.day.isoformat(), slots=len(body.slots), recorded_at=ts(rec.ts))
