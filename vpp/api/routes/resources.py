"""Registered resources and their capabilities; aggregators get the site aggregate only."""
from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from vpp.api.deps import ConfigDep, Reader
from vpp.market.site import resources

router = APIRouter(tags=["resources"])


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


@router.get("/resources", response_model=Resources)
async def read_resources(p: Reader, config: ConfigDep, request: Request) -> Resources:
    services = request.app.state.services
    return Resources(**resources(config, services, services.now(), per_device=p.role != "aggregator"))
