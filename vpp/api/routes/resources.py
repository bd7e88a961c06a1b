"""Registered resources and their capabilities; aggregators get the site aggregate only."""
from __future__ import annotations

from fastapi import APIRouter

from vpp.api.deps import ConfigDep, Reader, ServicesDep
from vpp.api.schemas.resources import Resources
from vpp.market.site import resources

router = APIRouter(tags=["resources"])


@router.get("/resources", response_model=Resources)
async def read_resources(p: Reader, config: ConfigDep, services: ServicesDep) -> Resources:
    return Resources(**resources(config, services, services.now(), per_device=p.role != "aggregator"))
