"""Request dependencies: config, services, the authenticated principal, idempotency keys.

Tests override :func:`get_config` (``app.dependency_overrides``) like any other dependency.
Dependencies are ``async`` (cheap, no I/O): each sync dependency would cost a threadpool hop
per request. Authentication and authorisation (401/403/429) happen in the security middleware
(:mod:`vpp.api.guard`) before the body is read; the dependencies here re-check the same access
table (:mod:`vpp.api.access`) and hand the principal to the route. Then the idempotency-key
check (400), then body validation (422).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request, status

from vpp.api import access
from vpp.api.auth import KeyStore, Principal, Role
from vpp.api.guard import Authenticator, Denied, authorize, presented_key
from vpp.config import SiteConfig
from vpp.market.ledger import Ledger
from vpp.market.offers import MarketService

MAX_IDEMPOTENCY_KEY = 200


async def get_config(request: Request) -> SiteConfig:
    return request.app.state.config


async def get_market(request: Request) -> MarketService:
    return request.app.state.market


async def get_ledger(request: Request) -> Ledger:
    return request.app.state.ledger


async def get_keys(request: Request) -> KeyStore:
    return request.app.state.keys


async def get_services(request: Request) -> Any:
    """The running service's ``Services`` (config, store, controller, clock, flexibility, SoC)."""
    return request.app.state.services


ConfigDep = Annotated[SiteConfig, Depends(get_config)]
ServicesDep = Annotated[Any, Depends(get_services)]
MarketDep = Annotated[MarketService, Depends(get_market)]
LedgerDep = Annotated[Ledger, Depends(get_ledger)]


def _http(e: Denied) -> HTTPException:
    return HTTPException(e.status, e.detail, headers=e.headers or None)


async def get_principal(request: Request) -> Principal:
    """The caller the security middleware authenticated; without the middleware (an app
    assembled differently), authenticated here from ``Authorization: Bearer <key>`` or
    ``X-API-Key`` by the same :class:`~vpp.api.guard.Authenticator` (401/429 otherwise)."""
    p = getattr(request.state, "principal", None)
    if p is not None:
        return p
    auth: Authenticator = request.app.state.auth
    client = request.client.host if request.client else "?"
    try:
        return await auth.principal(presented_key({k.lower(): v for k, v in request.headers.items()}), client)
    except Denied as e:
        raise _http(e) from None


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def authorized(request: Request, principal: PrincipalDep) -> Principal:
    """Dependency: the caller, when the access table (:mod:`vpp.api.access`) lets their role
    call this route (403 otherwise)."""
    route = request.scope.get("route")
    st = request.app.state
    rules = getattr(st, "access", None) or access.TABLE
    # the route in scope may be an included router's copy (path without the prefix): the
    # app's full path template is found by endpoint
    path = getattr(st, "route_paths", {}).get(getattr(route, "endpoint", None), getattr(route, "path", ""))
    try:
        authorize(principal, access.allowed(rules, request.method, path))
    except Denied as e:
        raise _http(e) from None
    return principal


#: the caller of any authenticated route; which roles may call it is the access table's row
Caller = Annotated[Principal, Depends(authorized)]


def require_roles(*roles: Role) -> Callable[[Principal], Principal]:
    """Dependency: the caller must hold one of ``roles`` (403 otherwise). Routes use
    :data:`Caller` (the access table); this stays for callers outside the table."""

    async def check(principal: PrincipalDep) -> Principal:
        try:
            authorize(principal, frozenset(roles))
        except Denied as e:
            raise _http(e) from None
        return principal

    return check


# Old names, kept: all are the table-driven check now (the table row decides the roles).
Operator = Caller
Awarder = Caller
Reader = Caller


async def get_idempotency_key(idempotency_key: Annotated[str | None, Header()] = None) -> str:
    """The required ``Idempotency-Key`` header (400 when absent or unusable)."""
    if idempotency_key is None or not idempotency_key.strip():
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Idempotency-Key header is required on POST")
    key = idempotency_key.strip()
    if len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            f"Idempotency-Key must be printable and at most {MAX_IDEMPOTENCY_KEY} characters")
    return key


IdempotencyKey = Annotated[str, Depends(get_idempotency_key)]
