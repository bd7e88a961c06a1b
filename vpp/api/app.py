"""Application factory: ``create_app(config, services)``.

Nothing is opened at import or at ``create_app`` time; the lifespan hook opens the ledger
(unless its owner passes one in) and the key store when the server starts and closes them when
it stops. The app never imports the runtime: whoever runs it builds the services.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from vpp.api import access
from vpp.api.auth import KeyStore, count_keys
from vpp.api.docs import router as docs_router
from vpp.api.guard import Authenticator, SecurityMiddleware, operations
from vpp.api.headers import SecurityHeaders
from vpp.api.openapi_links import add_links
from vpp.api.routes import awards, balancing, baseline, bill, costs, dispatches, flexibility, health, offers, resources, vpp_view
from vpp.api.routes import assessment
from vpp.api.routes import ledger as ledger_routes
from vpp.api.routes import bids as bids_routes
from vpp.api.routes import ev as ev_routes
from vpp.api.routes import status as status_routes
from vpp.services import LiveSite, Services, SiteServices
from vpp.dashboard.routes import router as dashboard_router
from vpp.config import SiteConfig
from vpp.market.bid_inputs import BidCache
from vpp.market.dispatch import DispatchBook, DispatchError, DispatchService
from vpp.market.site import site_batteries, site_floor, storm_active
from vpp.market.ledger import IdempotencyConflict, Ledger
from vpp.market.offers import MarketError, MarketService

__all__ = ["API_PREFIX", "LiveSite", "Services", "SiteServices", "create_app"]

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


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


def create_app(config: SiteConfig, services: Services, ledger: Ledger | None = None) -> FastAPI:
    """The API and dashboard app over ``services``. The ledger is ``ledger`` when given (its
    owner closes it), else opened at ``config.api.ledger_path`` for the app's lifetime."""
    if isinstance(services, SiteServices) and services.config is None:
        services.config = config

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        led = ledger if ledger is not None else Ledger.open(config.api.ledger_path, clock=services.now)
        app.state.ledger = led
        app.state.keys = KeyStore(config.api.keys_path)
        app.state.auth = Authenticator(app.state.keys)
        if not count_keys(config.api.keys_path):
            log.warning("no API keys in %s: every authenticated route answers 401 "
                        "(create one with `vpp keys create`)", config.api.keys_path)
        app.state.market = MarketService(led, services.flexibility, services.now)
        controller = services.controller
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
            if ledger is None:
                led.close()

    app = FastAPI(title="VPP site API", version="1", lifespan=lifespan,
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=None, redoc_url=None)
    app.state.config = config
    app.state.bid_cache = BidCache()
    app.state.services = services
    for r in (health.router, offers.router, awards.router, ledger_routes.router, resources.router, flexibility.router,
              dispatches.router, baseline.router, vpp_view.router, costs.router, bill.router, balancing.router,
              assessment.router):
        app.include_router(r, prefix=API_PREFIX)
    app.include_router(status_routes.router, prefix=API_PREFIX)
    app.include_router(bids_routes.router, prefix=API_PREFIX)
    app.include_router(ev_routes.router, prefix=API_PREFIX)
    app.include_router(dashboard_router)  # the ops dashboard at /
    if config.api.docs:  # our own reference page, no CDN (FastAPI's Swagger UI / ReDoc are off)
        app.include_router(docs_router)

    # who may call what, checked before any body is read (vpp.api.guard, vpp.api.access)
    rules = access.table(config.api.aggregator_offers, config.api.docs)
    ops = operations(app)
    missing = [(m, path) for path, methods, _ in ops for m in sorted(methods)
               if m != "HEAD" and access.allowed(rules, m, path) is None]
    if missing:
        raise RuntimeError(f"operations missing from the access table (vpp.api.access): {missing}")
    app.state.access = rules
    app.state.route_paths = {endpoint: path for path, _, endpoint in ops}
    app.add_middleware(SecurityMiddleware, app_ref=app, rules=rules, max_body=config.api.max_body_bytes,
                       max_concurrent=config.api.max_concurrent_requests)
    app.add_middleware(SecurityHeaders)  # outermost: refusals get them too

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
            # who may call what (the access table): a security requirement and the roles per operation
            doc.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
            for path, item in doc.get("paths", {}).items():
                for method, op in item.items():
                    roles = access.allowed(rules, method.upper(), path)
                    if roles:
                        op["security"] = [{"bearer": []}, {"apiKey": []}]
                        op["x-roles"] = sorted(roles)
            add_links(doc)  # created ids → the operations that take them
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
