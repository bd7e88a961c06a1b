"""Energy cost, CO2 and VPP revenue of today / this month (operators and viewers); the
arithmetic is :mod:`vpp.market.costs`."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request

from vpp.api.deps import ServicesDep, Caller
from vpp.api.schemas.common import ts
from vpp.api.schemas.costs import CostsOut
from vpp.market.costs import cost_summary
from vpp.storage.base import StorageError

router = APIRouter(tags=["costs"])

# who may call which route: vpp.api.access
Local = Caller


@router.get("/costs", response_model=CostsOut,
            responses={503: {"description": "the telemetry store cannot be read (no stale numbers instead)"}})
def read_costs(_: Local, request: Request, services: ServicesDep,
               period: Annotated[Literal["today", "month"], Query()] = "today") -> CostsOut:
    st = request.app.state
    if not hasattr(st, "cost_cache") or len(st.cost_cache) > 200:
        st.cost_cache = {}  # past days' metered energy (see cost_summary), kept bounded
    try:
        s = cost_summary(services.store, st.config, st.ledger, period, services.now(), cache=st.cost_cache)
    except StorageError as e:
        raise HTTPException(503, f"telemetry store unavailable: {e}") from None
    s["start"], s["end"] = ts(s["start"]), ts(s["end"])
    return CostsOut(**s)
