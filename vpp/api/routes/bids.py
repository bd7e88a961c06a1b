"""``GET /bids?day=YYYY-MM-DD``: the site's day-ahead offer per 30-min slot;
``POST /bids/prices``: the aggregator's expected prices per slot for a day.

Thin routers over :mod:`vpp.market.bids` (:func:`~vpp.market.bids.plan_bids` is the service
``vpp bids`` calls too). Aggregator and operator only, not viewers (commercial
information). Inputs come from the running services: the clock, present SoC (controller
snapshots, else ``services.soc_of``), the store and weather provider of the controller, its
storm mode, ``services.jma_doc() -> dict | None`` when present (the latest JMA warning
document). Prices, first found wins: the latest posted for the day (ledger), optional
``services.bid_prices(day) -> DataFrame | None``, the config defaults. Site-level
aggregates only. A bad day (not a date, in the past, after tomorrow) or bad prices (wrong
day, off the 30-min grid, negative) → 422 with the reason; no plan → 503.
"""
from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from vpp.api.auth import Principal
from vpp.api.deps import IdempotencyKey, require_roles
from vpp.market.bids import SLOT, BidError, BidResult, plan_bids, posted_prices, record_prices

router = APIRouter(tags=["bids"])

#: aggregator and operator may read bids and post prices; viewers may not (commercial information)
BidParty = Annotated[Principal, Depends(require_roles("aggregator", "operator"))]


Price = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]


class PriceSlotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: Annotated[AwareDatetime, Field(description="slot start, ISO 8601 with offset, on :00 or :30")]
    capacity_up: Price = Field(description="[currency/kW per 30-min slot] for ΔkW up held")
    capacity_down: Price | None = Field(None, description="[currency/kW per slot]; null = no price, no offer")
    energy_up: Price | None = Field(None, description="[currency/kWh dispatched up]")
    energy_down: Price | None = None
    spot: Price | None = Field(None, description="day-ahead spot price [currency/kWh]")

    @field_validator("start")
    @classmethod
    def _boundary(cls, v: datetime) -> datetime:
        try:
            if v.timestamp() % SLOT.total_seconds():
                raise ValueError("slot start must be on a 30-minute boundary")
            return v.astimezone(UTC)
        except OverflowError:
            raise ValueError("slot start out of range") from None


class BidPricesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: date = Field(description="bid day YYYY-MM-DD in the site time zone (today or tomorrow)")
    slots: Annotated[list[PriceSlotIn], Field(min_length=1, max_length=50)]


class BidPricesOut(BaseModel):
    id: str
    day: str
    slots: int
    recorded_at: str


class BidSlotOut(BaseModel):
    start: str = Field(description="slot start (UTC, ISO 8601)")
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
    deadline: str = Field(description="day-ahead gate closure: 14:00 site time the day before")
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


class ErrorOut(BaseModel):
    detail: str


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _inputs(config: Any, services: Any, now: datetime) -> dict[str, Any]:
    """SoC per battery, store, weather and storm mode from the running services."""
    ctl = getattr(services, "controller", None)
    soc: dict[str, float] = {}
    for b in config.devices_of("battery"):
        value = math.nan
        if ctl is not None:
            snap, _ = ctl.snapshot(b.id, now)
            value = snap.values.get("soc", math.nan) if snap is not None else math.nan
        elif getattr(services, "soc_of", None) is not None:
            try:
                value = float(services.soc_of(b.id))
            except (KeyError, LookupError, TypeError, ValueError):
                value = math.nan
        if math.isfinite(value):
            soc[b.id] = value
    jma = getattr(services, "jma_doc", None)
    return {"soc": soc, "store": getattr(ctl, "store", None) if ctl is not None else getattr(services, "store", None),
            "weather": getattr(ctl, "weather", None), "storm": getattr(ctl, "storm", None),
            "jma_doc": jma() if callable(jma) else None}


def to_out(res: BidResult, currency: str, prices_source: str = "config") -> BidsOut:
    slots = [BidSlotOut(start=_iso(s.start), end=_iso(s.start + SLOT), up_kw=round(s.up_w / 1e3, 3),
                        down_kw=round(s.down_w / 1e3, 3), capacity_price_up=_num(s.capacity_price_up),
                        capacity_price_down=_num(s.capacity_price_down), energy_price_up=_num(s.energy_price_up),
                        energy_price_down=_num(s.energy_price_down), spot=_num(s.spot),
                        expected_revenue=round(s.expected_revenue, 2), reason=s.reason, removed=s.removed)
             for s in res.slots]
    return BidsOut(site=res.site, day=res.day.isoformat(), timezone=res.timezone, currency=currency,
                   generated_at=_iso(res.generated_at), deadline=res.deadline.isoformat(),
                   deadline_passed=res.late, duration_s=res.duration_s, activation_ratio=res.activation_ratio,
                   confidence=res.confidence, expected_revenue=round(res.expected_revenue, 2),
                   revenue_at_risk=round(res.revenue_at_risk, 2), prices_source=prices_source, storm=res.storm, warnings=res.warnings,
                   slots=slots, removed=[RemovedSlotOut(start=_iso(s.start), reason=s.reason) for s in res.removed])


@router.get("/bids", response_model=BidsOut,
            responses={503: {"model": ErrorOut, "description": "no plan could be made"}})
def read_bids(_: BidParty, request: Request,
              day: Annotated[date, Query(description="bid day YYYY-MM-DD in the site time zone (today or tomorrow)")]
              ) -> BidsOut:
    """The offer per 30-min slot of ``day``, co-optimised with the site's energy plan
    (422 with the reason for a bad day or bad prices)."""
    config = request.app.state.config
    services = request.app.state.services
    now = services.now()
    try:
        prices, source = posted_prices(request.app.state.ledger, day, config.site.timezone), "posted"
        prices_of = getattr(services, "bid_prices", None)
        if prices is None and callable(prices_of):
            prices, source = prices_of(day), "services"
        if prices is None:
            source = "config"
        res = plan_bids(config, day, prices, now=now, **_inputs(config, services, now))
    except BidError as e:
        raise HTTPException(e.status, str(e)) from None
    return to_out(res, config.tariff.currency, source)


@router.post("/bids/prices", status_code=status.HTTP_201_CREATED, response_model=BidPricesOut)
def post_bid_prices(principal: BidParty, key: IdempotencyKey, body: BidPricesIn, request: Request,
                    response: Response) -> BidPricesOut:
    """Expected prices per 30-min slot of ``day`` (recorded in the ledger; the latest posted
    for a day are what ``GET /bids`` uses). Slots left out get no offer. 422 with the reason
    for a bad day or prices for another day."""
    config = request.app.state.config
    try:
        rec, created = record_prices(request.app.state.ledger, principal.name, key, body.day,
                                     [s.model_dump() for s in body.slots], now=request.app.state.services.now(),
                                     tz=config.site.timezone)
    except BidError as e:
        raise HTTPException(e.status, str(e)) from None
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return BidPricesOut(id=rec.id, day=body.day.isoformat(), slots=len(body.slots), recorded_at=_iso(rec.ts))
