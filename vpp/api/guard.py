"""The security middleware: limits, authentication and authorisation before any route runs.

Per request under the app (ASGI, so before FastAPI reads or validates a body):

1. ``Content-Length`` above ``max_body`` → 413 (nothing read);
2. more than ``max_concurrent`` requests in flight (event streams apart) → 503 + ``Retry-After``;
3. the route's row in the access table (:mod:`vpp.api.access`): public → on to 6;
   not in the table → 403;
4. authentication (:class:`Authenticator`): no key → 401; a key verified before → its
   principal (no KDF); a client address that failed recently → 429 + ``Retry-After``
   *before* any KDF, unless the key's id is an active key's (then the backoff is per
   address and id: a valid key is not locked out by a flood from a shared address); too many verifications queued → 503; else scrypt in a worker thread
   (at most ``kdf_threads`` at once); a wrong key → 401 and the address backs off;
5. the caller's role not in the row → 403;
6. the body read up to ``max_body`` bytes (chunked bodies counted) → 413 beyond, then
   replayed to the app. The principal is in ``request.state.principal``.

Errors are JSON ``{"detail", "code"}`` like the app's own.
"""
from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.routing import compile_path

from vpp.api import access
from vpp.api.auth import KeyStore, Principal

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class Denied(Exception):
    """A request refused before the app: HTTP ``status`` with ``detail``, ``code`` and headers."""

    def __init__(self, status: int, detail: str, code: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.code, self.headers = status, detail, code, headers or {}


def presented_key(headers: dict[str, str]) -> str | None:
    """The key from ``Authorization: Bearer <key>`` (wins) or ``X-API-Key``."""
    presented = headers.get("x-api-key") or None
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            presented = token.strip()
    return presented


class Backoff:
    """Failed attempts per client address: after ``free`` failures within ``window_s`` the
    address waits ``base_s`` doubling per further failure up to ``max_s`` [s]. At most
    ``max_clients`` addresses are remembered (oldest dropped)."""

    def __init__(self, free: int = 5, window_s: float = 60.0, base_s: float = 1.0, max_s: float = 60.0,
                 max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.free, self.window_s, self.base_s, self.max_s = free, window_s, base_s, max_s
        self.max_clients, self.clock = max_clients, clock
        self._state: OrderedDict[str, tuple[int, float, float]] = OrderedDict()  # failures, first, until

    def retry_after(self, client: str) -> float:
        """Seconds ``client`` must wait before a key of theirs is verified (0: go ahead)."""
        st = self._state.get(client)
        return max(0.0, st[2] - self.clock()) if st is not None else 0.0

    def failed(self, client: str) -> None:
        now = self.clock()
        n, first, _ = self._state.pop(client, (0, now, 0.0))
        if now - first > self.window_s:
            n, first = 0, now
        n += 1
        until = now + min(self.max_s, self.base_s * 2 ** (n - self.free)) if n >= self.free else 0.0
        self._state[client] = (n, first, until)
        while len(self._state) > self.max_clients:
            self._state.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._state.pop(client, None)


class Authenticator:
    """Keys → principals without ever blocking the event loop: cached keys answer at once;
    scrypt runs in at most ``kdf_threads`` worker threads with at most ``max_waiting``
    verifications queued (503 beyond); failures back off per client address."""

    def __init__(self, keys: KeyStore, kdf_threads: int = 2, max_waiting: int = 16,
                 backoff: Backoff | None = None) -> None:
        self.keys = keys
        self.backoff = backoff or Backoff()
        self._limiter = anyio.CapacityLimiter(kdf_threads)
        self.max_waiting = max_waiting
        self._pending = 0
        self.kdf_runs = 0  # verifications that ran the KDF (tests, bench)

    async def principal(self, presented: str | None, client: str) -> Principal:
        if not presented:
            raise Denied(401, "missing API key", "unauthorized", {"WWW-Authenticate": "Bearer"})
        hit = self.keys.cached(presented)
        if hit is not None:
            return hit
        # An address backing off gets no KDF for unknown key ids; a key whose id is an active
        # key's still gets verified, with a backoff of its own per (address, id): a valid key
        # used for the first time from an address shared with a flooding client (NAT) is not
        # locked out, and an attacker who learnt an id gets only a few guesses per window.
        key_id = self.keys.known_id(presented)
        wait = self.backoff.retry_after(client)
        if wait > 0 and key_id is not None:
            wait = self.backoff.retry_after(f"{client}#{key_id}")
        if wait > 0:
            raise Denied(429, "too many failed attempts; retry later", "rate_limited",
                         {"Retry-After": str(max(1, math.ceil(wait)))})
        if self._pending >= self.max_waiting:
            raise Denied(503, "too many key verifications in progress", "busy", {"Retry-After": "1"})
        self._pending += 1
        try:
            self.kdf_runs += 1
            p = await anyio.to_thread.run_sync(self.keys.verify, presented, limiter=self._limiter)
        finally:
            self._pending -= 1
        if p is None:
            self.backoff.failed(client)
            if key_id is not None:
                self.backoff.failed(f"{client}#{key_id}")
            raise Denied(401, "invalid API key", "unauthorized", {"WWW-Authenticate": "Bearer"})
        self.backoff.succeeded(f"{client}#{p.key_id}")
        if self.backoff.retry_after(client) == 0:  # a success does not lift another caller's penalty
            self.backoff.succeeded(client)
        return p


def authorize(principal: Principal, roles: frozenset | None) -> None:
    """403 unless ``principal``'s role is in ``roles`` (None: the operation is not in the table)."""
    if roles is None:
        raise Denied(403, "this operation is not in the access table", "forbidden")
    if principal.role not in roles:
        need = " or ".join(r for r in ("aggregator", "operator", "viewer") if r in roles)
        raise Denied(403, f"role {principal.role!r} may not do this (needs {need})", "forbidden")


async def _send_json(send: Send, e: Denied) -> None:
    body = json.dumps({"detail": e.detail, "code": e.code}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in e.headers.items()]
    await send({"type": "http.response.start", "status": e.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def operations(app: Any) -> list[tuple[str, frozenset[str], Any]]:
    """Every operation of ``app`` as ``(path template, methods, endpoint)`` in routing order,
    with included routers' prefixes applied."""
    try:
        from fastapi.routing import iter_route_contexts
        routes = list(iter_route_contexts(app.routes))
    except ImportError:  # FastAPI versions that flatten included routers into app.routes
        routes = list(app.routes)
    return [(r.path, frozenset(r.methods or ()), r.endpoint) for r in routes
            if getattr(r, "path", None) is not None and getattr(r, "methods", None)]


class SecurityMiddleware:
    """ASGI middleware doing steps 1–6 of the module docstring. ``app_ref`` is the FastAPI app
    (its routes are matched to find the table row); ``auth`` is looked up per request
    (``app.state.auth``, made in the lifespan)."""

    def __init__(self, app: Any, *, app_ref: Any, rules: dict, max_body: int, max_concurrent: int,
                 streaming: frozenset[str] = frozenset({"/api/v1/stream"})) -> None:
        self.app, self.app_ref, self.rules = app, app_ref, rules
        self.max_body, self.max_concurrent, self.streaming = max_body, max_concurrent, streaming
        self.in_flight = 0

    _ops: list | None = None

    def _route(self, scope: Scope) -> tuple[str | None, bool]:
        """The matched operation's path template (None: no route) and whether the method
        matched too (False: the router answers 405)."""
        if self._ops is None:
            self._ops = [(compile_path(p)[0], p, m) for p, m, _ in operations(self.app_ref)]
        path, method = scope["path"], scope["method"]
        partial = None
        for regex, template, methods in self._ops:
            if regex.match(path):
                if method in methods or (method == "HEAD" and "GET" in methods):
                    return template, True
                partial = partial or template
        return partial, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        path, full = self._route(scope)
        if path is None or not full:  # 404 / 405 from the router
            await self.app(scope, receive, send)
            return
        stream = path in self.streaming
        counted = False
        try:
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                raise Denied(413, f"request body larger than {self.max_body} bytes", "too_large")
            if not stream:
                if self.in_flight >= self.max_concurrent:
                    raise Denied(503, "too many requests in progress", "busy", {"Retry-After": "1"})
                self.in_flight += 1
                counted = True
            roles = access.allowed(self.rules, scope["method"], path)
            if roles is None or roles:  # not public
                auth: Authenticator = self.app_ref.state.auth
                client = (scope.get("client") or ("?", 0))[0]
                principal = await auth.principal(presented_key(headers), client)
                authorize(principal, roles)
                scope.setdefault("state", {})["principal"] = principal
            receive = await self._buffered(receive)
        except Denied as e:
            if counted:
                self.in_flight -= 1
            await _send_json(send, e)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            if counted:
                self.in_flight -= 1

    async def _buffered(self, receive: Receive) -> Receive:
        """Read the whole body (413 beyond ``max_body``) and return a receive that replays it
        once, then passes on to the server's (disconnects)."""
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                first = msg
                break
            body = msg.get("body", b"")
            size += len(body)
            if size > self.max_body:
                raise Denied(413, f"request body larger than {self.max_body} bytes", "too_large")
            chunks.append(body)
            if not msg.get("more_body", False):
                first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        return replay
