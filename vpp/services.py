"""What the API needs from the running service: the :class:`Services` protocol.

Every attribute and method a router, the dashboard or the app factory uses is declared here,
so nothing probes services with ``getattr``. Two implementations: :class:`SiteServices` (a
flexibility function, optionally a controller, a store, a clock: API-only apps and tests) and
the same class wired by :class:`vpp.runtime.Runtime` with a :class:`LiveSite` (the running
site behind the status routes and the dashboard).
"""
from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from vpp.config import SiteConfig
from vpp.control.liveness import Liveness
from vpp.control.operator import OperatorActions
from vpp.control.reserve_policy import ReservePolicy
from vpp.market.flex_service import PlanFlexibility
from vpp.market.flexibility import BatteryFlexibility, FlexSlot
from vpp.market.jma_watch import JmaWatch
from vpp.market.offers import FlexibilityFn

if TYPE_CHECKING:
    import pandas as pd

    from vpp.control.loop import Controller
    from vpp.storage.base import Store


@dataclass
class LiveSite:
    """The running site behind the status routes, the stream and the dashboard."""

    liveness: Liveness  #: last good readings, lost devices
    operator: OperatorActions  #: alarm acknowledgements, overrides
    replan: Callable[[], Awaitable[None]]  #: re-plan now (after a reserve change)
    stopping: asyncio.Event  #: set when the runtime stops (ends the event streams)
    pipeline_metrics: Callable[[], Mapping[str, Any]]  #: telemetry pipeline (``store_up``, ``queued``, ...)
    jma: JmaWatch | None = None  #: the JMA watch when enabled
    time_scale: float = 1.0  #: runtime-clock seconds per wall second [-]
    simulated: bool = False  #: the runtime runs on a simulated clock


@runtime_checkable
class Services(Protocol):
    """What the API needs from the running service."""

    config: SiteConfig
    #: metered history (baselines, costs); None without one
    store: Store | None
    #: the control loop (plan-based flexibility, storm mode, dispatch book); None in API-only
    #: apps whose flexibility comes from a function
    controller: Controller | None
    #: the reserve in force (operator floor, storm mode and who set it); None: config defaults
    reserve_policy: ReservePolicy | None
    #: the running site (status routes, dashboard); None: those routes answer 503
    live: LiveSite | None
    def now(self) -> datetime:
        """Current UTC time (the simulated clock in simulations and scenarios)."""
        ...

    def flexibility(self, start: datetime, end: datetime) -> list[FlexSlot]:
        """Per 30-min slot in ``[start, end)``: power the site can sustain above its reserve."""
        ...

    def soc_of(self, device_id: str) -> float:
        """Present SoC [fraction] of a battery; NaN when unknown."""
        ...

    def jma_doc(self) -> dict[str, Any] | None:
        """The last JMA warning document (its warning windows remove bid slots); None: none."""
        ...

    def bid_prices(self, day: date) -> pd.DataFrame | None:
        """Expected prices for a bid day (a frame like :func:`vpp.market.prices.parse_price_csv`'s);
        None: the config's default prices."""
        ...


class SiteServices:
    """:class:`Services` from a flexibility callable (or a controller) and optional parts.

    ``flexibility`` defaults to the controller's plan (:class:`PlanFlexibility`); ``clock``
    to the controller's, else the wall clock. ``soc_of`` defaults to the flexibility's
    (:class:`BatteryFlexibility`), else NaN. ``config`` may be left to :func:`create_app`
    (it binds the app's). ``jma_doc`` and ``bid_prices`` may be replaced on the instance.
    """

    def __init__(self, flexibility: FlexibilityFn | None = None, clock: Callable[[], datetime] | None = None, *,
                 controller: Controller | None = None, soc_of: Callable[[str], float] | None = None,
                 store: Store | None = None, config: SiteConfig | None = None,
                 reserve_policy: ReservePolicy | None = None, live: LiveSite | None = None,
                 jma_doc: Callable[[], dict[str, Any] | None] | None = None,
                 bid_prices: Callable[[date], pd.DataFrame] | None = None) -> None:
        if flexibility is None:
            if controller is None:
                raise ValueError("give a flexibility function or a controller")
            flexibility = PlanFlexibility(controller)
        self._flexibility = flexibility
        if clock is None and controller is not None:
            clock = controller.now
        self._clock = clock or (lambda: datetime.now(UTC))
        if soc_of is None and isinstance(flexibility, BatteryFlexibility):
            soc_of = flexibility.soc_of
        self._soc_of = soc_of
        self.config = config  # type: ignore[assignment]  # bound by create_app when None
        self.controller = controller
        self.store = store
        self.reserve_policy = reserve_policy
        self.live = live
        self.jma_doc = jma_doc or (lambda: None)  # type: ignore[method-assign]
        self.bid_prices = bid_prices or (lambda day: None)  # type: ignore[method-assign]

    def flexibility(self, start: datetime, end: datetime) -> list[FlexSlot]:
        return self._flexibility(start, end)

    def now(self) -> datetime:
        return self._clock()

    def soc_of(self, device_id: str) -> float:
        if self._soc_of is None and self.controller is not None:
            snap, _ = self.controller.snapshot(device_id, self.now())
            return float(snap.values.get("soc", math.nan)) if snap is not None else math.nan
        if self._soc_of is None:
            return math.nan
        try:
            return float(self._soc_of(device_id))
        except (LookupError, TypeError, ValueError):
            return math.nan

    def jma_doc(self) -> dict[str, Any] | None:  # replaced per instance in __init__
        return None
