"""``/vpp/activity``: the operators' VPP view (site aggregates, kW and kWh at this edge)."""
from __future__ import annotations

from pydantic import BaseModel, Field

from vpp.api.schemas.dispatches import DispatchOut
from vpp.market.activity import Phase


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
    phase: Phase = Field(description="accepted / partial (waiting), executing, suspended (storm mode), done, "
                                    "cancelled, rejected")


class VppActivity(BaseModel):
    now: str
    days: float
    offers: list[OfferRow]
    awards: list[AwardRow]
    dispatches: list[DispatchRow]
