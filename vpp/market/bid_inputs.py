"""What a day-ahead bid is planned from in the running service, and the price precedence.

:func:`site_bid` is what ``GET /api/v1/bids`` calls: it gathers the inputs of
:func:`vpp.market.bids.plan_bids` from the running services and plans the bid.

Inputs (:func:`bid_inputs`)
---------------------------
* SoC per battery: ``services.soc_of(id)`` (present SoC [fraction]); batteries whose SoC is
  unknown (NaN) are left out and :func:`~vpp.market.bids.plan_bids` assumes its default.
* Store, weather and storm mode: the controller's when there is one (the store also without
  one: ``services.store``); the latest JMA warning document: ``services.jma_doc()``.
* Prices, first found wins (:func:`bid_prices`): the latest posted for the day (the
  ledger, ``POST /bids/prices``) → ``posted``; ``services.bid_prices(day)`` → ``services``;
  else the config defaults → ``config``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import pandas as pd

from vpp.config import SiteConfig, updated
from vpp.market.bids import BidResult, plan_bids, posted_prices

PricesSource = Literal["posted", "services", "config"]


@dataclass(frozen=True)
class BidInputs:
    """Everything :func:`~vpp.market.bids.plan_bids` takes besides config, day and prices."""

    now: datetime
    soc: dict[str, float]
    store: Any = None
    weather: Any = None
    storm: Any = None
    jma_doc: dict | None = None

    def as_kwargs(self) -> dict[str, Any]:
        return {"now": self.now, "soc": self.soc, "store": self.store, "weather": self.weather,
                "storm": self.storm, "jma_doc": self.jma_doc}


def bid_inputs(config: SiteConfig, services: Any) -> BidInputs:
    """The running services' SoC, store, weather, storm mode and JMA document at ``services.now()``."""
    ctl = services.controller
    soc = {}
    for b in config.devices_of("battery"):
        value = services.soc_of(b.id)
        if math.isfinite(value):
            soc[b.id] = value
    return BidInputs(now=services.now(), soc=soc, store=ctl.store if ctl is not None else services.store,
                     weather=ctl.weather if ctl is not None else None, storm=ctl.storm if ctl is not None else None,
                     jma_doc=services.jma_doc())


def bid_prices(ledger: Any, services: Any, day: date, tz: str) -> tuple[pd.DataFrame | None, PricesSource]:
    """The prices a bid for ``day`` uses and where they come from (precedence in the module
    docstring); ``None`` prices mean the config defaults."""
    prices = posted_prices(ledger, day, tz)
    if prices is not None:
        return prices, "posted"
    prices = services.bid_prices(day)
    if prices is not None:
        return prices, "services"
    return None, "config"


def site_bid(config: SiteConfig, services: Any, ledger: Any, day: date) -> tuple[BidResult, PricesSource]:
    """The bid for local ``day`` from the running services; raises
    :class:`~vpp.market.bids.BidError` like :func:`~vpp.market.bids.plan_bids`."""
    inputs = bid_inputs(config, services)
    prices, source = bid_prices(ledger, services, day, config.site.timezone)
    if services.reserve_policy is not None:  # the floor in force (an operator's), not the file's
        config = updated(config, reserve=services.reserve_policy.reserve())
    return plan_bids(config, day, prices, **inputs.as_kwargs()), source
