"""Flexibility per 30-min slot above the reserve floor (:func:`vpp.market.flex_service.flexibility_view`)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from vpp.api.deps import Reader, ServicesDep
from vpp.api.schemas.common import TimeWindow, time_window, ts
from vpp.api.schemas.flexibility import FlexibilityOut, FlexSlotOut, for_aggregator
from vpp.market.flex_service import flexibility_view

router = APIRouter(tags=["flexibility"])


@router.get("/flexibility", response_model=FlexibilityOut)
async def read_flexibility(p: Reader, request: Request, services: ServicesDep,
                           window: Annotated[TimeWindow, Depends(time_window)]) -> FlexibilityOut:
    """Per 30-min slot in ``[start, end)`` (start rounded down, end up to slot boundaries)."""
    ctl = services.controller
    policy = services.reserve_policy  # who set the storm, when a running site serves
    a, e, rows = flexibility_view(services.flexibility, window.start, window.end,
                                  storm=ctl.storm if ctl is not None else None,
                                  storm_set_by=policy.storm_set_by if policy is not None else None)
    slots = [FlexSlotOut.from_slot(f) for f in rows]
    if p.role == "aggregator":  # no operator free text to aggregators
        slots = [for_aggregator(s) for s in slots]
    return FlexibilityOut(start=ts(a), end=ts(e), slots=slots)
