"""``/bids`` and ``/bids/prices``: the day-ahead offer (kW at this edge) and the
aggregator's expected prices."""
from __future__ import annotations

import math
from datetime import date
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from vpp.api.schemas.common import In, SlotStart, in_range, ts
from vpp.market.bids import BidResult
from vpp.slots import SLOT

Price = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
#: a day of 30-min slots, plus the two of a DST change elsewhere
MAX_PRICE_SLOTS = 50


class PriceSlotIn(In):
    start: SlotStart
    capacity_up: Price = Field(description="[currency/kW per 30-min slot] for ΔkW up held")
    capacity_down: Price | None = Field(None, description="[currency/kW per slot]; null = no price, no offer")
    energy_up: Price | None = Field(None, description="[currency/kWh dispatched up]")
    energy_down: Price | None = None
    spot: Price | None = Field(None, description="day-ahead spot price [currency/kWh]")


class BidPricesIn(In):
    day: Annotated[date, AfterValidator(in_range)] = Field(description="bid day YYYY-MM-DD in the site time zone (today or tomorrow)")
    slots: Annotated[list[PriceSlotIn], Field(min_length=1, max_length=MAX_PRICE_SLOTS)]


class BidPricesOut(BaseModel):
    id: str
    day: str
    slots: int
    recorded_at: str


class BidSlotOut(BaseModel):
    start: str = Field(description="slot start (UTC, RFC 3339)")
    end: str
    up_kw: float = Field(description="ΔkW offered upwards (more discharge / less charge) [kW]")
    down_kw: float = Field(description="ΔkW offered downwards (more charge) [kW]")
    capacity_price_up: float | None = Field(description="[currency/kW per slot]; null = no price (no offer)")
    capacity_price_down: float | None
    energy_price_up: float | None = Field(description="[currency/kWh dispatched]")
    energy_price_down: float | None
    spot: float | None = Field(description="day-ahead spot price [currency/kWh]")
    expected_revenue: float = Field(description="capacity payment + activation ratio × energy payment [currency]")
    reason: str = Field(description="why nothing is offered (storm, JMA warning, no price, …), else empty")
    removed: bool = Field(description="taken out by storm mode, a JMA warning, or because it has started")


class RemovedSlotOut(BaseModel):
    start: str
    reason: str


class BidsOut(BaseModel):
    site: str
    day: str = Field(description="bid day (site time zone)")
    timezone: str
    currency: str
    generated_at: str
    deadline: str = Field(description="day-ahead gate closure: 14:00 site time the day before (as UTC)")
    deadline_passed: bool
    duration_s: float = Field(description="how long an activated offer must be sustained [s]")
    activation_ratio: float
    confidence: float
    expected_revenue: float = Field(description="[currency]")
    revenue_at_risk: float = Field(description="expected revenue paid only if dispatched [currency]")
    prices_source: str = Field(description="posted (POST /bids/prices), services, or config (defaults)")
    storm: str | None = Field(description="why slots were removed by storm mode / JMA warnings, null if none")
    warnings: list[str]
    slots: list[BidSlotOut]
    removed: list[RemovedSlotOut]

    @classmethod
    def from_result(cls, res: BidResult, currency: str, prices_source: str = "config") -> "BidsOut":
        slots = [BidSlotOut(start=ts(s.start), end=ts(s.start + SLOT), up_kw=round(s.up_w / 1e3, 3),
                            down_kw=round(s.down_w / 1e3, 3), capacity_price_up=_num(s.capacity_price_up),
                            capacity_price_down=_num(s.capacity_price_down), energy_price_up=_num(s.energy_price_up),
                            energy_price_down=_num(s.energy_price_down), spot=_num(s.spot),
                            expected_revenue=round(s.expected_revenue, 2), reason=s.reason, removed=s.removed)
                 for s in res.slots]
        return cls(site=res.site, day=res.day.isoformat(), timezone=res.timezone, currency=currency,
                   generated_at=ts(res.generated_at), deadline=ts(res.deadline), deadline_passed=res.late,
                   duration_s=res.duration_s, activation_ratio=res.activation_ratio, confidence=res.confidence,
                   expected_revenue=round(res.expected_revenue, 2), revenue_at_risk=round(res.revenue_at_risk, 2),
                   prices_source=prices_source, storm=res.storm, warnings=res.warnings, slots=slots,
                   removed=[RemovedSlotOut(start=ts(s.start), reason=s.reason) for s in res.removed])


class ErrorOut(BaseModel):
    detail: str


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
