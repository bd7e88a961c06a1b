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

Caching (:class:`BidCache`, :func:`prepared_bid`)
-------------------------------------------------
A bid takes seconds (forecast + MILP) and depends only on its inputs, so ``GET /bids`` keeps
the last results per ``(day, inputs version)``: :func:`inputs_version` is the day, the
current 30-min slot, SoC per battery (to 0.5 %), storm mode, the JMA document, the prices
and their source. Concurrent requests for the same key share one computation.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import pandas as pd

from vpp.config import SiteConfig, updated
from vpp.market.bids import BidResult, plan_bids, posted_prices
from vpp.slots import floor_time

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
    #: the storm mode was raised by the JMA watch: its reason is public warning text, not an
    #: operator's words, so the bid may name it
    storm_by_jma: bool = False

    def as_kwargs(self) -> dict[str, Any]:
        return {"now": self.now, "soc": self.soc, "store": self.store, "weather": self.weather,
                "storm": self.storm, "jma_doc": self.jma_doc, "storm_reason_public": self.storm_by_jma}


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
                     jma_doc=services.jma_doc(),
                     storm_by_jma=getattr(services.reserve_policy, "storm_set_by", None) == "jma")


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


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def inputs_version(day: date, inputs: BidInputs, prices: pd.DataFrame | None, source: PricesSource) -> tuple:
    """What a bid for ``day`` depends on, as a hashable key (see the module docstring)."""
    storm = inputs.storm
    storm_key = ((bool(storm.active), float(storm.target), str(storm.deadline), inputs.storm_by_jma)
                 if storm is not None else None)
    price_key = (_digest(prices.reset_index().to_dict(orient="list")) if prices is not None else None)
    return (day.isoformat(), floor_time(inputs.now).isoformat(),
            tuple(sorted((b, round(v * 200)) for b, v in inputs.soc.items())),
            storm_key, _digest(inputs.jma_doc) if inputs.jma_doc is not None else None, source, price_key)


def prepared_bid(config: SiteConfig, services: Any, ledger: Any, day: date
                 ) -> tuple[tuple, Callable[[], tuple[BidResult, PricesSource]]]:
    """``(key, compute)``: the inputs version of a bid for ``day`` now and the call that plans
    it from exactly those inputs (reads the services and the ledger: run it off the event loop)."""
    inputs = bid_inputs(config, services)
    prices, source = bid_prices(ledger, services, day, config.site.timezone)

    def compute() -> tuple[BidResult, PricesSource]:
        return plan_bids(config, day, prices, **inputs.as_kwargs()), source

    return inputs_version(day, inputs, prices, source), compute


class BidCache:
    """The last ``size`` results by key; concurrent :meth:`get` calls for a key being
    computed wait for that one computation (run in a worker thread). Errors are shared with
    the waiters but not kept."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._done: OrderedDict[tuple, Any] = OrderedDict()
        self._running: dict[tuple, asyncio.Future] = {}
        self.computed = 0  # computations run (tests)

    async def get(self, key: tuple, compute: Callable[[], Any]) -> Any:
        if key in self._done:
            self._done.move_to_end(key)
            return self._done[key]
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        fut = asyncio.get_running_loop().create_future()
        self._running[key] = fut
        try:
            self.computed += 1
            result = await asyncio.to_thread(compute)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            self._running.pop(key, None)
        fut.set_result(result)
        self._done[key] = result
        while len(self._done) > self.size:
            self._done.popitem(last=False)
        return result
