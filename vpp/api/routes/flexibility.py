"""Flexibility per 30-min slot above the reserve floor."""
from __future__ import annotations

from datetime import UTC, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from vpp.api.deps import Reader
from vpp.market.flex_service import details_from_slots, soc_details
from vpp.market.flexibility import BatteryFlexibility
from vpp.market.offers import MAX_WINDOW, SLOT

router = APIRouter(tags=["flexibility"])


class FlexSlotOut(BaseModel):
    start: str
    end: str
    up_kw: float = Field(description="extra discharge / export the site can hold for the whole slot [kW]")
    down_kw: float = Field(description="extra charge / import [kW]")
    up_kwh: float = Field(description="energy above the reserve floor available upwards [kWh]")
    down_kwh: float = Field(description="energy that fits below the batteries' upper SoC limit [kWh]")
    up_max_duration_s: float = Field(description="how long up_kw can be held [s]")
    down_max_duration_s: float = Field(description="how long down_kw can be held [s]")
    up_kw_band: list[float] = Field(description="[low, high] uncertainty band of up_kw [kW]")
    down_kw_band: list[float]
    available: bool
    reason: str = Field(description="why not available (storm_mode), else empty")
    source: str = Field(description="plan (optimiser) or soc (present SoC only)")
    reason_detail: str = Field("", description="human reason behind `reason`: for storm_mode the "
                                               "storm's (JMA warnings in force, or the operator's "
                                               "reason) and who set it; else empty")


class FlexibilityOut(BaseModel):
    start: str
    end: str
    slots: list[FlexSlotOut]


def _iso(t) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


@router.get("/flexibility", response_model=FlexibilityOut)
async def read_flexibility(_: Reader, request: Request, start: Annotated[AwareDatetime, Query()],
                     end: Annotated[AwareDatetime, Query()]) -> FlexibilityOut:
    """Per 30-min slot in ``[start, end)`` (start rounded down, end up to slot boundaries)."""
    if end <= start:
        raise HTTPException(422, "end must be after start")
    if end - start > MAX_WINDOW:
        raise HTTPException(422, f"window must not exceed {MAX_WINDOW.days} days")
    step = SLOT.total_seconds()
    a = start.astimezone(UTC) - timedelta(seconds=start.timestamp() % step)
    rem = end.timestamp() % step
    e = end.astimezone(UTC) + (timedelta(seconds=step - rem) if rem else timedelta(0))
    services = request.app.state.services
    fn = services._flexibility if hasattr(services, "_flexibility") else services.flexibility
    detail = getattr(fn, "detail", None)
    if detail is not None:
        rows = detail(a, e)
    elif isinstance(fn, BatteryFlexibility):
        rows = soc_details(fn, a, e)
    else:
        rows = details_from_slots(services.flexibility(a, e))
    storm = getattr(getattr(services, "controller", None), "storm", None)
    storm_on = bool(storm is not None and storm.active)
    why = storm_detail(storm, services.reserve_policy) if storm_on else ""
    out = []
    for d in rows:
        unavailable = not d.available or storm_on
        z = 0.0 if unavailable else 1.0
        reason = (d.reason or "storm_mode") if unavailable else ""
        detail_text = (why if reason == "storm_mode" and storm_on else d.reason_detail) if unavailable else ""
        out.append(FlexSlotOut(
            start=_iso(d.start), end=_iso(d.start + SLOT), up_kw=z * d.up_kw, down_kw=z * d.down_kw,
            up_kwh=z * d.up_kwh, down_kwh=z * d.down_kwh, up_max_duration_s=z * d.up_max_duration_s,
            down_max_duration_s=z * d.down_max_duration_s,
            up_kw_band=[z * max(d.up_kw - d.band_up_kw, 0.0), z * (d.up_kw + d.band_up_kw)],
            down_kw_band=[z * max(d.down_kw - d.band_down_kw, 0.0), z * (d.down_kw + d.band_down_kw)],
            available=not unavailable, reason=reason, source=d.source, reason_detail=detail_text))
    return FlexibilityOut(start=_iso(a), end=_iso(e), slots=out)


def storm_detail(storm, runtime=None) -> str:
    """The storm's human reason, e.g. ``JMA 大雨警報 (03) in force for 0410000`` or
    ``typhoon 24 landfall (set by op-1)``: the reason it was switched on with, plus who set
    it when a runtime knows and the reason does not already say so."""
    reason = str(getattr(storm, "reason", "") or "")
    by = getattr(runtime, "storm_set_by", None)
    if by and by.lower() not in reason.lower():
        reason = f"{reason} (set by {by})" if reason else f"set by {by}"
    return reason
