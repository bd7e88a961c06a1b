from __future__ import annotations

from fastapi import APIRouter

import vpp
from vpp.api.deps import ConfigDep
from vpp.api.schemas.health import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(config: ConfigDep) -> Health:
    return Health(site=config.site.name, version=getattr(vpp, "__version__", "0"))
