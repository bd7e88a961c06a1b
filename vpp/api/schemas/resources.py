"""``/resources``: registered resources and their capabilities (kW, kWh at this edge)."""
from __future__ import annotations

from pydantic import BaseModel, Field


class SiteResource(BaseModel):
    id: str
    kind: str
    batteries: int
    available: int
    charge_kw: float
    discharge_kw: float
    capacity_kwh: float
    usable_kwh_above_floor: float = Field(description="energy above the reserve floor [kWh]")
    reserve_floor_pct: float
    response_time_s: float
    metering_point: str | None
    storm_mode: bool


class DeviceResource(BaseModel):
    id: str
    kind: str
    available: bool
    charge_kw: float
    discharge_kw: float
    capacity_kwh: float
    usable_kwh_above_floor: float | None
    reserve_floor_pct: float
    response_time_s: float


class Resources(BaseModel):
    site: SiteResource
    devices: list[DeviceResource] | None = Field(None, description="per battery; omitted for aggregators")
