"""``/flexibility``: the one flexibility record (:class:`vpp.market.flexibility.FlexSlot`,
W/Wh/s) in kW/kWh at this edge."""
from __future__ import annotations

from pydantic import BaseModel, Field

from vpp.api.schemas.common import ts
from vpp.market.flexibility import FlexSlot
from vpp.slots import SLOT


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
                                               "reason) and who set it; aggregators get a fixed "
                                               "sentence per reason; else empty")

    @classmethod
    def from_slot(cls, f: FlexSlot) -> "FlexSlotOut":
        """``f`` must be complete (:func:`vpp.market.flex_service.completed`)."""
        return cls(start=ts(f.start), end=ts(f.start + SLOT), up_kw=f.up_w / 1000, down_kw=f.down_w / 1000,
                   up_kwh=(f.up_wh or 0.0) / 1000, down_kwh=(f.down_wh or 0.0) / 1000,
                   up_max_duration_s=f.up_max_duration_s or 0.0, down_max_duration_s=f.down_max_duration_s or 0.0,
                   up_kw_band=[max(f.up_w - f.band_up_w, 0.0) / 1000, (f.up_w + f.band_up_w) / 1000],
                   down_kw_band=[max(f.down_w - f.band_down_w, 0.0) / 1000, (f.down_w + f.band_down_w) / 1000],
                   available=f.available, reason=f.reason if not f.available else "", source=f.source,
                   reason_detail=f.reason_detail if not f.available else "")


#: What aggregators read in ``reason_detail``: a fixed sentence per reason code. The storm's own
#: reason is operator free text (names, phone numbers, places) or the JMA area code (where the
#: site is), so it stays with operators and viewers.
AGGREGATOR_DETAIL = {"storm_mode": "storm preparation: the site is building its disaster reserve"}


def for_aggregator(out: "FlexSlotOut") -> "FlexSlotOut":
    """``out`` with ``reason_detail`` replaced by :data:`AGGREGATOR_DETAIL` for its reason."""
    return out.model_copy(update={"reason_detail": AGGREGATOR_DETAIL.get(out.reason, "") if out.reason else ""})


class FlexibilityOut(BaseModel):
    start: str
    end: str
    slots: list[FlexSlotOut]
