"""Request dependencies: config, services, the authenticated principal, idempotency keys.

Tests override :func:`get_config` (``app.dependency_overrides``) like any other dependency.
Dependencies are ``async`` (cheap, no I/O): each sync dependency would cost a threadpool hop
per request. Dependency order matters for error precedence: authentication (401/403) runs before the
idempotency-key check (400), which runs before body validation (422).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from vpp.api.auth import KeyStore, Principal, Role
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


async def get_principal(
    keys: Annotated[KeyStore, Depends(get_keys)],
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    """The caller, from ``Authorization: Bearer <key>`` or ``X-API-Key``; 401 otherwise."""
    presented = x_api_key
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            presented = token.strip()
    if not presented:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API key",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = keys.cached(presented)
    if principal is None:  # scrypt (tens of ms): off the event loop
        principal = await run_in_threadpool(keys.verify, presented)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key",
                            headers={"WWW-Authenticate": "Bearer"})
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: Role) -> Callable[[Principal], Principal]:
    """Dependency: the caller must hold one of ``roles`` (403 otherwise)."""

    async def check(principal: PrincipalDep) -> Principal:
        if principal.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"role {principal.role!r} may not do this (needs {' or '.join(roles)})")
        return principal

    return check


Operator = Annotated[Principal, Depends(require_roles("operator"))]
Awarder = Annotated[Principal, Depends(require_roles("aggregator", "operator"))]
Reader = Annotated[Principal, Depends(require_roles("operator", "aggregator", "viewer"))]


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
