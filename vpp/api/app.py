"""Application factory: ``create_app(config, services)``.

Nothing is opened at import or at ``create_app`` time; the lifespan hook opens the ledger
and the key store when the server starts and closes them when it stops.
"""
from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from vpp.api.auth import KeyStore, count_keys
from vpp.api.routes import awards, baseline, costs, dispatches, flexibility, health, ledger, offers, resources, vpp_view
from vpp.api.routes import bids as bids_routes
from vpp.api.routes import status as status_routes
from vpp.dashboard.routes import router as dashboard_router
from vpp.config import SiteConfig
from vpp.market.dispatch import DispatchBook, DispatchError, DispatchService
from vpp.market.flex_service import PlanFlexibility
from vpp.market.flexibility import FlexSlot
from vpp.market.site import site_batteries, site_floor, storm_active
from vpp.market.ledger import IdempotencyConflict, Ledger
from vpp.market.offers import FlexibilityFn, MarketError, MarketService

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


@runtime_checkable
class Services(Protocol):
    """What the API needs from the running service."""

    def flexibility(self, start: datetime, end: datetime) -> list[FlexSlot]:
        """Per 30-min slot in ``[start, end)``: power the site can sustain above its reserve."""
        ...

    def now(self) -> datetime:
        """Current UTC time (the simulated clock in scenarios)."""
        ...


class SiteServices:
    """:class:`Services` built from a flexibility callable and an optional clock.

    Optional parts the API uses when given: ``controller`` (a
    :class:`vpp.control.loop.Controller`: plan-based flexibility, storm mode, and the
    dispatch book becomes its ``dispatch_source``), ``soc_of(device_id) -> SoC`` (present
    SoC without a controller) and ``store`` (metered history for baselines).
    """

    def __init__(self, flexibility: FlexibilityFn | None = None, clock=None, *, controller: Any = None,
                 soc_of: Callable[[str], float] | None = None, store: Any = None) -> None:
        if flexibility is None:
            if controller is None:
                raise ValueError("give a flexibility function or a controller")
            flexibility = PlanFlexibility(controller)
        self._flexibility = flexibility
        if clock is None and controller is not None:
            clock = controller.now
        self._clock = clock or (lambda: datetime.now(UTC))
        self.controller = controller
        self._soc_of = soc_of or getattr(flexibility, "soc_of", None)
        self.store = store

    def flexibility(self, start: datetime, end: datetime) -> list[FlexSlot]:
        return self._flexibility(start, end)

    def now(self) -> datetime:
        return self._clock()

    def soc_of(self, device_id: str) -> float:
        """Present SoC [fraction] of a battery (the controller's snapshot when there is a
        controller), NaN when unknown."""
        if self.controller is not None:
            snap, _ = self.controller.snapshot(device_id, self.now())
            return float(snap.values.get("soc", math.nan)) if snap is not None else math.nan
        if self._soc_of is None:
            return math.nan
        try:
            return float(self._soc_of(device_id))
        except (LookupError, TypeError, ValueError):
            return math.nan

    def jma_doc(self) -> dict | None:
        """The latest JMA warning document (None: none known; the runtime sets its own)."""
        return None

    def bid_prices(self, day: date) -> Any:
        """Expected prices for a bid day (a DataFrame like :func:`vpp.market.prices.parse_price_csv`'s)
        or None: the config defaults (tests and deployments may replace it)."""
        return None


def _plan_baseline(controller: Any):
    if controller is None:
        return None
    from vpp.market.metering import plan_import_w

    def slots(start: datetime, end: datetime) -> dict[str, float] | None:
        s = plan_import_w(controller, start, end)
        if s is None or s.empty or s.isna().any():
            return None
        return {t.isoformat().replace("+00:00", "Z"): float(v) for t, v in s.items()}

    return slots


def create_app(config: SiteConfig, services: Services) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        led = Ledger.open(config.api.ledger_path, clock=services.now)
        app.state.ledger = led
        app.state.keys = KeyStore(config.api.keys_path)
        if not count_keys(config.api.keys_path):
            log.warning("no API keys in %s: every authenticated route answers 401 "
                        "(create one with `vpp keys create`)", config.api.keys_path)
        app.state.market = MarketService(led, services.flexibility, services.now)
        controller = getattr(services, "controller", None)
        book = DispatchBook(lambda now: site_batteries(config, services, now))
        if controller is not None:
            book.attach(controller)
        n = book.load(led)
        if n:
            log.info("dispatch book rebuilt from the ledger: %d dispatches", n)
        app.state.book = book
        app.state.dispatch = DispatchService(led, book, services.flexibility, services.now,
                                             storm=lambda: storm_active(services),
                                             floor_soc=lambda: site_floor(config, services),
                                             plan_baseline=_plan_baseline(controller))
        try:
            yield
        finally:
            led.close()

    app = FastAPI(title="VPP site API", version="1", lifespan=lifespan,
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs", redoc_url=None)
    app.state.config = config
    app.state.services = services
    for r in (health.router, offers.router, awards.router, ledger.router, resources.router, flexibility.router,
              dispatches.router, baseline.router, vpp_view.router, costs.router):
        app.include_router(r, prefix=API_PREFIX)
    app.include_router(status_routes.router, prefix=API_PREFIX)
    app.include_router(bids_routes.router, prefix=API_PREFIX)
    app.include_router(dashboard_router)  # the ops dashboard at /

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Only loc/msg/type: echoing the input can break JSON (NaN) or leak what was sent.
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                   "type": str(e.get("type", ""))} for e in exc.errors()]
        return JSONResponse({"detail": errors, "code": "invalid_request"}, status_code=422)

    @app.exception_handler(MarketError)
    async def _market_error(request: Request, exc: MarketError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "code": exc.code}, status_code=exc.status)

    @app.exception_handler(DispatchError)
    async def _dispatch_error(request: Request, exc: DispatchError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "code": exc.code}, status_code=exc.status)

    @app.exception_handler(IdempotencyConflict)
    async def _conflict(request: Request, exc: IdempotencyConflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "code": "idempotency_conflict"}, status_code=409)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error", "code": "internal"}, status_code=500)

    def openapi() -> dict:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi
            doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
            # 422 bodies are either the validation list or a rule's message (string), plus a code
            schemas = doc.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = {
                    "title": "HTTPValidationError", "type": "object", "required": ["detail"],
                    "properties": {"detail": {"anyOf": [
                        {"type": "string"}, {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}]},
                        "code": {"type": "string"}}}
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
