"""What an edge agent needs from the town it runs (:class:`TownPort`), and the port over a
running :class:`~vpp.runtime.Runtime` (the same controller, reserve rules and local plan as
``vpp run``)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from drivers.protocols import Snapshot
from vpp.control.bounds import Proposal
from vpp.edge.commands import CommandBook, TownCapacity
from vpp.market.dispatch import battery_states
from vpp.market.dispatch_records import BatteryState


class TownPort(Protocol):
    """One town (or home group) under an edge agent."""

    town: str

    def now(self) -> datetime: ...

    def capacity(self, now: datetime) -> TownCapacity: ...

    def drain_telemetry(self) -> list[Snapshot]:
        """Readings since the last call, oldest first."""

    def status(self) -> dict[str, Any]: ...

    def set_policy(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Put a checked reserve policy in force; returns the policy now in force."""

    def policy_state(self) -> dict[str, Any]: ...

    def install(self, book: CommandBook) -> None:
        """Make ``book`` the source of the controller's dispatch layer (its fallback: the
        town's own dispatch source)."""

    def alarm(self, key: str, message: str, active: bool) -> None: ...


class RuntimePort:
    """:class:`TownPort` over a started :class:`~vpp.runtime.Runtime` (``rt``)."""

    def __init__(self, rt: Any, town: str) -> None:
        self.rt, self.town = rt, town
        self._buf: list[Snapshot] = []
        rt.snapshot_listeners.append(self._buf.append)

    def now(self) -> datetime:
        return self.rt.now()

    def batteries(self, now: datetime) -> list[BatteryState]:
        return battery_states(self.rt.controller, now)

    def capacity(self, now: datetime) -> TownCapacity:
        return TownCapacity(self.batteries(now), self.rt.config.reserve.floor_pct)

    def drain_telemetry(self) -> list[Snapshot]:
        out, self._buf[:] = list(self._buf), []
        return out

    def status(self) -> dict[str, Any]:
        ctl, now = self.rt.controller, self.now()
        cap = self.capacity(now)
        soc_w = sum(b.capacity_wh for b in cap.batteries)
        soc = sum(b.soc * b.capacity_wh for b in cap.batteries) / soc_w if soc_w else None
        leases = getattr(ctl, "leases", {}) or {}
        return {"soc": soc, "headroom_wh": cap.headroom_wh, "room_wh": cap.room_wh,
                "max_discharge_w": cap.max_discharge_w, "max_charge_w": cap.max_charge_w,
                "floor_pct": self.rt.reserve.floor_pct, "config_floor_pct": self.rt.config.reserve.floor_pct,
                "storm": bool(self.rt.reserve.storm.active),
                "local_plan": ctl.plan is not None,
                "sources": sorted({getattr(v, "source", "") for v in leases.values()}),
                "alarms": sorted(a.key for a in ctl.alarms.active())}

    def policy_state(self) -> dict[str, Any]:
        return self.rt.reserve.state()

    def set_policy(self, body: Mapping[str, Any]) -> dict[str, Any]:
        deadline = body.get("storm_deadline")
        if isinstance(deadline, str):
            deadline = datetime.fromisoformat(deadline.replace("Z", "+00:00"))
        return self.rt.reserve.set_reserve("central", floor_pct=body.get("floor_pct"), storm=body.get("storm"),
                                           storm_target_pct=body.get("storm_target_pct"),
                                           storm_deadline=deadline, reason=str(body.get("reason", "central policy")))

    def install(self, book: CommandBook) -> None:
        ctl = self.rt.controller
        own: Callable[[datetime], Mapping[str, Proposal]] | None = ctl.dispatch_source
        if own is not book:
            book.fallback = own
        book.batteries = self.batteries
        ctl.dispatch_source = book

    def alarm(self, key: str, message: str, active: bool) -> None:
        alarms, now = self.rt.controller.alarms, self.now()
        if active:
            alarms.raise_(key, message, now, "warning")
        else:
            alarms.clear(key, now, message)
