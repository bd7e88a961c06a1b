"""Application factory: ``create_app(config, services)``.

Nothing is opened at import or at ``create_app`` time; the lifespan hook opens the ledger
and the key store when the server starts and closes them when it stops.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from vpp.api.auth import KeyStore, count_keys
from vpp.api.routes import awards, health, ledger, offers
from vpp.api.routes import status as status_routes
from vpp.dashboard.routes import router as dashboard_router
from vpp.config import SiteConfig
from vpp.market.flexibility import FlexSlot
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
    """:class:`Services` built from a flexibility callable and an optional clock."""

    def __init__(self, flexibility: FlexibilityFn, clock=None) -> None:
        self._flexibility = flexibility
        self._clock = clock or (lambda: datetime.now(UTC))

    def flexibility(self, start: datetime, end: datetime) -> list[FlexSlot]:
        return self._flexibility(start, end)

    def now(self) -> datetime:
        return self._clock()


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
        try:
            yield
        finally:
            led.close()

    app = FastAPI(title="VPP site API", version="1", lifespan=lifespan,
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs", redoc_url=None)
    app.state.config = config
    app.state.services = services
    for r in (health.router, offers.router, awards.router, ledger.router):
        app.include_router(r, prefix=API_PREFIX)
    app.include_router(status_routes.router, prefix=API_PREFIX)
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

    @app.exception_handler(IdempotencyConflict)
    async def _conflict(request: Request, exc: IdempotencyConflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "code": "idempotency_conflict"}, status_code=409)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error", "code": "internal"}, status_code=500)

    return app
