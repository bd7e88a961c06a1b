"""The centre's HTTP API: the ``/api/v1`` shapes with a town dimension, kept thin.

Operations (roles as in :mod:`vpp.api.access`; the same :class:`~vpp.api.guard.SecurityMiddleware`
checks size, key and role before a body is read):

* ``GET  /api/v1/health`` — public;
* ``GET  /api/v1/towns`` — every town's last status and when it was seen;
* ``GET  /api/v1/towns/{town}`` — one town;
* ``POST /api/v1/towns/{town}/reserve`` — operator: the town's reserve policy (floor %, storm
  mode), leased; refused (409, the reason) if below the town's configured floor;
* ``POST /api/v1/towns/{town}/dispatches`` — operator/aggregator: site battery power [kW at the
  edge, W inside] over a window, leased; refused (409) outside the town's ratings;
* ``GET  /api/v1/towns/{town}/commands/{command_id}`` — a command and its ack.

Commands are accepted with 202 (the town acks over the bus; poll the command). The town checks
every command again on arrival (lease, order, ratings, reserve).
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from vpp.api.access import ALL, OPERATOR, PARTIES, PUBLIC
from vpp.api.auth import KeyStore
from vpp.api.guard import Authenticator, SecurityMiddleware
from vpp.api.headers import SecurityHeaders
from vpp.bus.subjects import check_town
from vpp.central.service import CentralService
from vpp.errors import ServiceError

P = "/api/v1"
RULES: dict[tuple[str, str], frozenset] = {
    ("GET", f"{P}/health"): PUBLIC,
    ("GET", f"{P}/towns"): ALL,
    ("GET", f"{P}/towns/{{town}}"): ALL,
    ("POST", f"{P}/towns/{{town}}/reserve"): OPERATOR,
    ("POST", f"{P}/towns/{{town}}/dispatches"): PARTIES,
    ("GET", f"{P}/towns/{{town}}/commands/{{command_id}}"): ALL,
}
MAX_LEASE_S = 24 * 3600.0


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReserveRequest(_Body):
    floor_pct: Annotated[float | None, Field(ge=0, le=100)] = None
    storm: bool | None = None
    storm_target_pct: Annotated[float | None, Field(ge=0, le=100)] = None
    storm_deadline: AwareDatetime | None = None
    reason: Annotated[str, Field(max_length=200)] = ""
    lease_s: Annotated[float, Field(gt=0, le=MAX_LEASE_S)] = 900.0


class DispatchRequest(_Body):
    start: AwareDatetime
    end: AwareDatetime
    setpoint_kw: Annotated[float, Field(ge=-100_000, le=100_000)]  #: site battery power, > 0 discharge
    lease_s: Annotated[float, Field(gt=0, le=MAX_LEASE_S)] = 900.0


def _town(central: CentralService, town: str) -> dict[str, Any]:
    try:
        check_town(town)
    except ValueError as e:
        raise HTTPException(404, str(e)) from None
    rec = central.state.towns().get(town)
    if rec is None:
        raise HTTPException(404, f"town {town!r} has not reported")
    return rec


def _command_view(c: dict[str, Any]) -> dict[str, Any]:
    return {"id": c["id"], "town": c["town"], "kind": c["kind"], "seq": c["seq"], "lease_until": c["lease_until"],
            "published": bool(c["published"]), "ack": c["ack_status"], "reason": c["ack_reason"]}


def create_central_app(central: CentralService, keys_path: str, *, max_body: int = 65536,
                       max_concurrent: int = 32) -> FastAPI:
    """The app over a running :class:`CentralService`; keys from ``keys_path`` (``vpp keys``)."""
    app = FastAPI(title="VPP central API", version="1", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.auth = Authenticator(KeyStore(keys_path))
    app.state.access = RULES

    @app.get(f"{P}/health")
    def health() -> dict[str, Any]:
        return {"ok": central.bus.connected, "towns": len(central.state.towns())}

    @app.get(f"{P}/towns")
    def towns() -> dict[str, Any]:
        return {"towns": [{"town": t, "seen": r["seen"], **r["status"]} for t, r in central.state.towns().items()],
                "commands": central.state.ack_counts()}

    @app.get(f"{P}/towns/{{town}}")
    def town(town: str) -> dict[str, Any]:
        rec = _town(central, town)
        return {"town": town, "seen": rec["seen"], **rec["status"]}

    def issue(town: str, kind: str, body: dict[str, Any], lease_s: float) -> JSONResponse:
        _town(central, town)
        try:
            env = central.issue(town, kind, body, lease_s)
        except ServiceError as e:
            return JSONResponse({"detail": str(e), "code": "refused"}, status_code=409)
        return JSONResponse(_command_view(central.state.command(env.id)), status_code=202)

    @app.post(f"{P}/towns/{{town}}/reserve", status_code=202)
    def reserve(town: str, req: ReserveRequest) -> JSONResponse:
        body = req.model_dump(exclude={"lease_s"}, exclude_none=True)
        if "storm_deadline" in body:
            body["storm_deadline"] = req.storm_deadline.isoformat()
        return issue(town, "policy", body, req.lease_s)

    @app.post(f"{P}/towns/{{town}}/dispatches", status_code=202)
    def dispatch(town: str, req: DispatchRequest) -> JSONResponse:
        if req.end <= req.start:
            return JSONResponse({"detail": "end must be after start", "code": "invalid_request"}, status_code=422)
        body = {"start": req.start.isoformat(), "end": req.end.isoformat(), "setpoint_w": req.setpoint_kw * 1000.0}
        return issue(town, "dispatches", body, req.lease_s)

    @app.get(f"{P}/towns/{{town}}/commands/{{command_id}}")
    def command(town: str, command_id: str) -> dict[str, Any]:
        c = central.state.command(command_id)
        if c is None or c["town"] != town:
            raise HTTPException(404, f"no command {command_id!r} for town {town!r}")
        return _command_view(c)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                   "type": str(e.get("type", ""))} for e in exc.errors()]
        return JSONResponse({"detail": errors, "code": "invalid_request"}, status_code=422)

    app.add_middleware(SecurityMiddleware, app_ref=app, rules=RULES, max_body=max_body,
                       max_concurrent=max_concurrent)
    app.add_middleware(SecurityHeaders)
    return app
