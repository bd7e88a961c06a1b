"""The centre checks a command against what the town last reported before issuing it: the
same rules as the edge (:mod:`vpp.edge.commands`), so a command the town would refuse for
its ratings or its configured reserve floor is refused here already, with the reason.
(The reserve cap on discharge is left to the edge: it decides on fresh readings.)"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from vpp.bus.envelope import BusMessageError, Envelope
from vpp.edge.commands import TownCapacity, check_policy, check_power_command
from vpp.errors import ServiceError
from vpp.market.dispatch_records import BatteryState


def capacity_from_status(status: dict[str, Any]) -> TownCapacity | None:
    """The town as one aggregate battery from its status (None without battery figures)."""
    try:
        head, room = float(status["headroom_wh"]), float(status["room_wh"])
        dis, chg = float(status["max_discharge_w"]), float(status["max_charge_w"])
        floor = float(status.get("config_floor_pct", status.get("floor_pct", 0.0)))
    except (KeyError, TypeError, ValueError):
        return None
    span = head + room
    if span <= 0:
        return TownCapacity([], floor)
    return TownCapacity([BatteryState("town", head / span, 0.0, 1.0, span, chg, dis)], floor)


def precheck(town: str, kind: str, body: dict[str, Any], status: dict[str, Any] | None, now: datetime) -> None:
    """Raise :class:`ServiceError` naming the reason if ``town`` would refuse the command."""
    cap = capacity_from_status(status or {})
    if cap is None:
        return  # nothing known yet: the edge decides
    env = Envelope("precheck", town, kind, 0, now, body, now + timedelta(hours=1))
    try:
        out = check_policy(env, now, cap) if kind == "policy" else check_power_command(env, now, cap)[0]
    except BusMessageError as e:
        raise ServiceError(f"{kind} for {town}: {e}") from None
    if out.status == "rejected" and out.reason != "device_unavailable":
        raise ServiceError(f"{kind} for {town} refused ({out.reason}): {out.detail.get('detail', '')}")
