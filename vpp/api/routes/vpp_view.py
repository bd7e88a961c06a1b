"""The operators' VPP view: recent offers, awards and dispatches with their phase (site
aggregates only; per-slot performance is ``GET /dispatches/{id}/performance``)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from vpp.api import access
from vpp.api.deps import Caller
from vpp.api.schemas.common import ts
from vpp.api.schemas.dispatches import DispatchOut
from vpp.api.schemas.vpp import AwardRow, DispatchRow, OfferRow, VppActivity
from vpp.market.activity import recent

router = APIRouter(prefix="/vpp", tags=["vpp"])

# who may call which route: vpp.api.access
Local = Caller


@router.get("/activity", response_model=VppActivity)
def read_activity(p: Local, request: Request,
                  days: Annotated[float, Query(gt=0, le=31, description="look back [days]")] = 2.0) -> VppActivity:
    """Offers, awards and dispatches whose window ends within the last ``days`` or later
    (offer prices only for roles that may read bids)."""
    st = request.app.state
    now = st.dispatch.clock()
    r = recent(st.ledger, list(st.book.dispatches.values()), now, days)
    if not access.sees_prices(p.role):  # the same roles as /bids see prices
        r["offers"] = [{**o, "price_per_kwh": None} for o in r["offers"]]
    return VppActivity(now=ts(now), days=days, offers=[OfferRow(**o) for o in r["offers"]],
                       awards=[AwardRow(**a) for a in r["awards"]],
                       dispatches=[DispatchRow(**DispatchOut.from_dispatch(d, now).model_dump(), phase=ph)
                                   for d, ph in r["dispatches"]])
