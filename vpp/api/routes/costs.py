"""Energy cost, CO2 and VPP revenue of today / this month (operators and viewers); the
arithmetic is :mod:`vpp.market.costs`."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from vpp.api.auth import Principal
from vpp.api.deps import require_roles
from vpp.market.costs import cost_summary
from vpp.storage.base import StorageError

router = APIRouter(tags=["costs"])

Local = Annotated[Principal, Depends(require_roles("operator", "viewer"))]


class AccountOut(BaseModel):
    bought_kwh: float = Field(description="energy bought from the grid [kWh]")
    sold_kwh: float = Field(description="energy sold to the grid [kWh]")
    cost: float = Field(description="bought × buy price − sold × sell price [currency]")
    co2_kg: float = Field(description="bought × grid emission factor [kg CO2]")


class VppRevenueOut(BaseModel):
    capacity: float = Field(description="capacity payment [currency]")
    energy: float = Field(description="energy payment for settled deliveries [currency]")
    total: float
    delivered_kwh: float
    awarded_kwh: float


class CostsOut(BaseModel):
    period: Literal["today", "month"]
    start: str
    end: str
    timezone: str
    currency: str
    co2_kg_per_kwh: float
    slots: int = Field(description="30-min slots in the period so far")
    metered_slots: int = Field(description="slots with grid-meter readings")
    actual: AccountOut
    no_battery: AccountOut = Field(description="counterfactual: grid + battery energy, same tariff")
    savings: float = Field(description="cost without battery − cost with [currency]")
    co2_avoided_kg: float
    battery_discharged_kwh: float
    battery_charged_kwh: float
    vpp: VppRevenueOut


@router.get("/costs", response_model=CostsOut,
            responses={503: {"description": "the telemetry store cannot be read (no stale numbers instead)"}})
def read_costs(_: Local, request: Request,
               period: Annotated[Literal["today", "month"], Query()] = "today") -> CostsOut:
    st = request.app.state
    if getattr(st, "cost_cache", None) is None:
        st.cost_cache = {}  # past days' metered energy (see cost_summary)
    if len(st.cost_cache) > 200:
        st.cost_cache.clear()
    try:
        s = cost_summary(getattr(st.services, "store", None), st.config, st.ledger, period, st.services.now(),
                         cache=st.cost_cache)
    except StorageError as e:
        raise HTTPException(503, f"telemetry store unavailable: {e}") from None
    s["start"], s["end"] = s["start"].isoformat(), s["end"].isoformat()
    return CostsOut(**s)
