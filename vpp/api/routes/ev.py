"""EV sessions: per connected car what it needs, what the plan gives it, what it got, when it leaves.

The operator reads every session and sets needs; each session has a driver link (a token in
the path, no API key) through which that car's driver reads and sets only their own
session. Setting needs re-plans. Bad bodies are 422, an unknown charger or token 404, a
charger without a car 409.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException

from vpp.api.deps import Caller
from vpp.api.routes.status import SiteDep, finite
from vpp.api.schemas.ev import EvNeedsIn
from vpp.control import ev as evpolicy
from vpp.control.ev_needs import NeedsError, energy_from_soc
from vpp.services import Services
from vpp.timefmt import iso

router = APIRouter(tags=["ev"])


def _plugged(s: Services, cid: str, now: datetime) -> bool:
    snap, _ = s.controller.snapshot(cid, now)
    return snap is not None and evpolicy.connected(snap.values)


def session_view(s: Services, cid: str, now: datetime) -> dict[str, Any]:
    """One session: ``needed_wh`` (for this plug-in), ``delivered_wh`` (so far),
    ``planned_wh`` (delivered + what the plan gives before departure), ``departure``
    (UTC) and ``departure_local`` (site time), ``source`` of the need."""
    ctl = s.controller
    cfg = ctl.config
    charger = cfg.device(cid)
    need = ctl.ev_needs.get(cid)
    plug = ctl.ev_plugs.get(cid)
    departure = (need.departure if need is not None and need.departure is not None
                 else plug.departure if plug is not None else evpolicy.departure_for(now, cfg.site.timezone,
                                                                                     ctl.ev_policy))
    needed = need.energy_wh if need is not None and need.energy_wh is not None else ctl.ev_policy.need_wh
    snap, _ = ctl.snapshot(cid, now)
    delivered = float(snap.values.get("session_energy_wh", 0.0)) if snap is not None else math.nan
    planned = delivered
    plan = ctl.plan
    if plan is not None and cid in plan.schedule.ev_w:
        start, slot = plan.schedule.start, cfg.optimiser.slot_s
        for k, w in enumerate(plan.schedule.ev_w[cid]):
            t0 = start + timedelta(seconds=k * slot)
            t1 = t0 + timedelta(seconds=slot)
            lo, hi = max(t0, now), min(t1, departure)
            if hi > lo:
                planned += float(w) * (hi - lo).total_seconds() / 3600.0
    return {"charger": cid, "protocol": charger.protocol, "connected": snap is not None and evpolicy.connected(snap.values),
            "plugged_at": iso(plug.plugged_at) if plug is not None else None,
            "departure": iso(departure), "departure_local": departure.astimezone(ZoneInfo(cfg.site.timezone)).strftime("%H:%M"),
            "needed_wh": needed, "planned_wh": planned, "delivered_wh": delivered,
            "source": need.source if need is not None else "default"}


async def _set(s: Services, cid: str, body: EvNeedsIn, who: str) -> dict:
    ctl = s.controller
    now = s.now()
    if not _plugged(s, cid, now):
        raise HTTPException(409, f"no car connected to {cid}")
    energy = body.energy_wh
    if body.target_soc is not None:
        energy = energy_from_soc(body.target_soc, body.soc, body.capacity_wh)
    departure = body.departure
    if body.departure_local is not None:
        tz = ZoneInfo(ctl.config.site.timezone)
        local = now.astimezone(tz)
        hh, mm = map(int, body.departure_local.split(":"))
        departure = local.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if departure <= local:
            departure = datetime.combine(local.date() + timedelta(days=1), departure.timetz())
    try:
        ctl.ev_needs.set(cid, now, who, energy_wh=energy, departure=departure)
    except NeedsError as e:
        raise HTTPException(422, str(e)) from None
    if s.live is not None:
        await s.live.replan()
    return finite(session_view(s, cid, s.now()))


def _charger(s: Services, cid: str) -> str:
    if cid not in {c.id for c in s.controller.config.devices_of("ev_charger")}:
        raise HTTPException(404, f"no EV charger {cid!r}")
    return cid


@router.get("/ev/sessions")
async def list_sessions(_: Caller, s: SiteDep) -> list[dict]:
    now = s.now()
    return [finite(session_view(s, c.id, now)) for c in s.controller.config.devices_of("ev_charger")
            if _plugged(s, c.id, now)]


@router.put("/ev/sessions/{charger_id}/needs")
async def put_needs(charger_id: str, body: EvNeedsIn, _: Caller, s: SiteDep) -> dict:
    return await _set(s, _charger(s, charger_id), body, "operator")


@router.post("/ev/sessions/{charger_id}/link")
async def driver_link(charger_id: str, _: Caller, s: SiteDep) -> dict:
    """The driver's link for the car on ``charger_id`` now (valid until it leaves)."""
    cid = _charger(s, charger_id)
    if not _plugged(s, cid, s.now()):
        raise HTTPException(409, f"no car connected to {cid}")
    token = s.controller.ev_needs.link(cid)
    return {"charger": cid, "token": token, "path": f"/api/v1/ev/driver/{token}"}


def _by_token(s: Services, token: str) -> str:
    cid = s.controller.ev_needs.charger_of(token)
    if cid is None:
        raise HTTPException(404, "unknown or expired session link")
    return cid


@router.get("/ev/driver/{token}")
async def driver_session(token: str, s: SiteDep) -> dict:
    return finite(session_view(s, _by_token(s, token), s.now()))


@router.put("/ev/driver/{token}")
async def driver_needs(token: str, body: EvNeedsIn, s: SiteDep) -> dict:
    return await _set(s, _by_token(s, token), body, "driver")
