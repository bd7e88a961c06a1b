"""The operators' VPP view: recent offers, awards and dispatches with their phase (site
aggregates only; per-slot performance is ``GET /dispatches/{id}/performance``)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from vpp.api.auth import Principal
from vpp.api.deps import require_roles
from vpp.api.routes.dispatches import DispatchOut, out
from vpp.market.activity import Phase, recent

router = APIRouter(prefix="/vpp", tags=["vpp"])

Local = Annotated[Principal, Depends(require_roles("operator", "viewer"))]


class OfferRow(BaseModel):
    id: str
    created_at: str
    actor: str
    direction: str
    price_per_kwh: float | None = Field(description="[currency/kWh]")
    start: str
    end: str
    max_kw: float = Field(description="largest slot offered [kW]")
    energy_kwh: float = Field(description="offered capacity × 30 min, summed [kWh]")


class AwardRow(BaseModel):
    id: str
    offer_id: str
    created_at: str
    actor: str
    direction: str
    status: str = Field(description="accepted / partial / refused")
    start: str
    end: str
    awarded_kw: float
    accepted_kw: float
    awarded_kwh: float
    accepted_kwh: float
    reasons: list[str]


class DispatchRow(DispatchOut):
    phase: Phase = Field(description="accepted / partial (waiting), executing, done, cancelled, rejected")


class VppActivity(BaseModel):
    now: str
    days: float
    offers: list[OfferRow]
    awards: list[AwardRow]
    dispatches: list[DispatchRow]


@router.get("/activity", response_model=VppActivity)
def read_activity(_: Local, request: Request,
                  days: Annotated[float, Query(gt=0, le=31, description="look back [days]")] = 2.0) -> VppActivity:
    """Offers, awards and dispatches whose window ends within the last ``days`` or later."""
    st = request.app.state
    now = st.dispatch.clock()
    ds = list(st.book.dispatches.values())
    r = recent(st.ledger, ds, now, days)
    return VppActivity(now=now.isoformat(), days=days, offers=[OfferRow(**o) for o in r["offers"]],
                       awards=[AwardRow(**a) for a in r["awards"]],
                       dispatches=[DispatchRow(**out(d, now).model_dump(), phase=ph) for d, ph in r["dispatches"]])
