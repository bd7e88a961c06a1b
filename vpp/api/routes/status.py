"""Live site status, plan, devices, alarms, reserve and override: thin routes over the
:class:`~vpp.services.Services` of a running site (:mod:`vpp.api.views`; 503 when the app
runs without one).

Aggregators see site aggregates only (``/status``, ``/plan``); per-device and per-household
data (``/devices``, alarms, decisions) is for operators and viewers.
"""
from __future__ import annotations

import asyncio
import json
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import StreamingResponse
from vpp.api.schemas.status import OverrideIn, ReserveIn

from vpp.api import views
from vpp.api.deps import Operator, Reader, Caller
from vpp.services import LiveSite, Services
from vpp.errors import ServiceError

router = APIRouter(tags=["status"])

# who may call which route: vpp.api.access
Local = Caller


async def get_site(request: Request) -> Services:
    """The app's services when a site runs behind them (503 otherwise)."""
    s: Services = request.app.state.services
    if s.live is None or s.controller is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the control loop is not running in this process")
    return s


SiteDep = Annotated[Services, Depends(get_site)]
#: an event stream ends after this long [s] (clients reconnect, authenticating again)
STREAM_LIFETIME_S = 3600.0
#: open event streams per key at most (429 beyond)
MAX_STREAMS_PER_KEY = 4
# Routes are async on purpose: they read the controller's state on the event loop that
# mutates it, never from a worker thread.


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def _call(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except ServiceError as e:
        raise HTTPException(e.status, str(e)) from None


@router.get("/me")
async def whoami(p: Reader) -> dict:
    """The caller's key name and role (the dashboard shows or hides operator actions)."""
    return {"name": p.name, "role": p.role}


@router.get("/status")
async def read_status(p: Reader, s: SiteDep) -> dict:
    return finite(views.status(s, aggregate_only=p.role == "aggregator"))


@router.get("/plan")
async def read_plan(p: Reader, s: SiteDep) -> dict:
    return finite(views.plan(s, aggregate_only=p.role == "aggregator"))


@router.get("/devices")
async def read_devices(_: Local, s: SiteDep) -> list[dict]:
    return finite(views.devices(s))


@router.get("/alarms")
async def read_alarms(_: Local, s: SiteDep) -> list[dict]:
    return finite(views.alarms(s))


@router.post("/alarms/{alarm_id}/ack")
async def ack_alarm(alarm_id: str, p: Operator, s: SiteDep) -> dict:
    return _call(views.ack, s, alarm_id, p.name)


@router.put("/reserve")
async def put_reserve(body: ReserveIn, p: Operator, s: SiteDep) -> dict:
    if body.floor_pct is None and body.storm is None:
        raise HTTPException(422, "nothing to change: give floor_pct and/or storm")
    if s.reserve_policy is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no reserve policy in this process")
    new = _call(s.reserve_policy.set_reserve, p.name, floor_pct=body.floor_pct, storm=body.storm,
                storm_target_pct=body.storm_target_pct, storm_deadline=body.storm_deadline, reason=body.reason)
    await _live(s).replan()  # the next plan carries the new floor
    return finite({"reserve": new, "plan_made_at": views.plan(s)["made_at"], "battery": views.battery(s)})


@router.post("/override")
async def post_override(body: OverrideIn, p: Operator, s: SiteDep) -> dict:
    dev = body.device
    if dev is None:
        bats = [b.id for b in s.config.devices_of("battery")]
        if len(bats) != 1:
            raise HTTPException(422, f"device is required (batteries: {', '.join(bats) or 'none'})")
        dev = bats[0]
    return _call(_live(s).operator.override, p.name, dev, body.setpoint_kw, body.expires_at, body.reason)


@router.get("/stream")
async def stream(request: Request, p: Reader, s: SiteDep) -> StreamingResponse:
    """Server-sent events: ``status`` (and for operators/viewers ``devices`` and ``alarms``)
    whenever new readings arrived (checked every 0.25 s, at most ~1 per second) and at
    least every 5 s (the heartbeat). Ends when the key is revoked or expires (within about
    a second) and after :data:`STREAM_LIFETIME_S`; at most :data:`MAX_STREAMS_PER_KEY` per key."""
    agg = p.role == "aggregator"
    live = _live(s)
    st = request.app.state
    keys = st.keys
    if not hasattr(st, "streams"):
        st.streams = {}
    if st.streams.get(p.key_id, 0) >= MAX_STREAMS_PER_KEY:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"at most {MAX_STREAMS_PER_KEY} open event streams per key", headers={"Retry-After": "5"})

    async def events():
        st.streams[p.key_id] = st.streams.get(p.key_id, 0) + 1
        try:
            async for chunk in updates():
                yield chunk
        finally:
            st.streams[p.key_id] -= 1

    async def updates():
        seen, last_sent = -1, 0.0
        loop = asyncio.get_running_loop()
        opened = loop.time()
        while not live.stopping.is_set() and not await request.is_disconnected():
            t = loop.time()
            # a revoked or expired key ends the stream (the key file is re-read every second),
            # and no stream outlives STREAM_LIFETIME_S: the client reconnects and is re-checked
            if not keys.valid(p) or t - opened > STREAM_LIFETIME_S:
                break
            readings = live.liveness.readings
            if (readings != seen and t - last_sent >= 0.75) or t - last_sent >= 5.0:
                seen, last_sent = readings, t
                payload = {"status": views.status(s, aggregate_only=agg)}
                if not agg:
                    payload["devices"] = views.devices(s)
                    payload["alarms"] = views.alarms(s, 10)
                yield f"event: update\ndata: {json.dumps(finite(payload), default=str)}\n\n"
            await asyncio.sleep(0.25)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _live(s: Services) -> LiveSite:
    assert s.live is not None  # checked by get_site
    return s.live
