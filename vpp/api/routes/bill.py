"""``/bill``: the real bill of any past day or month, for the site or one home, against the
no-battery counterfactual (operators and viewers); the arithmetic is :mod:`vpp.market.bill`."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request

from vpp.api.deps import Caller, ServicesDep
from vpp.api.schemas.common import ts
from vpp.forecast.prices import PriceFileError
from vpp.market.bill import site_bill
from vpp.storage.base import StorageError

router = APIRouter(tags=["bill"])


@router.get("/bill", responses={404: {"description": "unknown home"},
                                422: {"description": "a day in the future, or prices that cannot be read"},
                                503: {"description": "the telemetry store cannot be read"}})
def read_bill(_: Caller, request: Request, services: ServicesDep,
              period: Annotated[Literal["day", "month"], Query()] = "day",
              day: Annotated[date | None, Query(description="local date (default today); month: its month")] = None,
              home: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")] = None) -> dict[str, Any]:
    config = request.app.state.config
    today = services.now().astimezone(ZoneInfo(config.site.timezone)).date()
    day = day or today
    if day > today:
        raise HTTPException(422, f"day {day.isoformat()} is in the future (today is {today.isoformat()})")
    try:
        b = site_bill(services.store, config, period, day, home=home, now=services.now())
    except KeyError:
        raise HTTPException(404, f"unknown home {home!r}") from None
    except PriceFileError as e:
        raise HTTPException(422, f"prices: {e}") from None
    except StorageError as e:
        raise HTTPException(503, f"telemetry store unavailable: {e}") from None
    b["start"], b["end"] = ts(b["start"]), ts(b["end"])
    return b
