"""Leased commands from the centre, checked and held at the edge (pure; no I/O).

A command (plan, dispatch or reserve policy, see :mod:`vpp.bus.envelope`) is applied only if

* its lease has not expired at the town's ``now`` (an expired one is acknowledged
  ``expired`` and never applied — also when it arrives late after a partition);
* it is newer (``seq``) than the last one of its kind applied (``superseded`` otherwise:
  out-of-order and replayed commands are never applied);
* its setpoints are within the town's ratings (``rejected``/``out_of_range``, before any write);
* it keeps the reserve: discharge that would take the town's batteries below the reserve floor
  is capped (``partial``/``reserve_floor``), and a policy may raise the reserve floor but never
  lower it below the town's own configured floor (``rejected``/``below_local_floor``).

:class:`CommandBook` holds the applied plan and dispatch until their leases end and is the
controller's ``dispatch_source`` (site power split across batteries by their headroom; the
controller's reserve layer still clips every setpoint). When both have expired it hands over
to the ``fallback`` source (the town's own dispatch book) and the town's local plan.

Bodies (SI units; site battery power > 0 = discharge):

* ``plans``: ``{"start": iso, "slot_s": s, "battery_w": [W per slot]}``
* ``dispatches``: ``{"start": iso, "end": iso, "setpoint_w": W}``
* ``policy``: ``{"floor_pct": %, "storm": bool, "storm_target_pct": %, "storm_deadline": iso, "reason": str}``
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from vpp.bus.envelope import BusMessageError, Envelope, body_time, number
from vpp.control.bounds import Proposal
from vpp.market.dispatch_records import BatteryState, split_by_headroom

#: Longest plan a command may carry [slots].
MAX_PLAN_SLOTS = 7 * 96


@dataclass(frozen=True)
class TownCapacity:
    """The town's batteries at ``now`` (fresh ones only) and its configured reserve floor [%]."""

    batteries: Sequence[BatteryState]
    config_floor_pct: float

    @property
    def headroom_wh(self) -> float:
        """Energy above the reserve floor [Wh]."""
        return sum(max(b.soc - b.floor, 0.0) * b.capacity_wh for b in self.batteries)

    @property
    def room_wh(self) -> float:
        """Energy that can still be charged [Wh]."""
        return sum(max(b.soc_max - b.soc, 0.0) * b.capacity_wh for b in self.batteries)

    @property
    def max_discharge_w(self) -> float:
        return sum(b.max_discharge_w for b in self.batteries)

    @property
    def max_charge_w(self) -> float:
        return sum(b.max_charge_w for b in self.batteries)


@dataclass(frozen=True)
class Outcome:
    """What the edge did with a command: ``applied`` / ``partial`` / ``rejected`` /
    ``expired`` / ``superseded``, the reason code and details for the ack."""

    status: str
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def applies(self) -> bool:
        return self.status in ("applied", "partial")

    def ack_body(self, env: Envelope) -> dict[str, Any]:
        return {"ref": env.id, "kind": env.kind, "seq": env.seq, "status": self.status,
                "reason": self.reason, **self.detail}


@dataclass(frozen=True)
class Held:
    """An applied plan or dispatch: site battery power [W] per slot from ``start`` until the lease."""

    id: str
    kind: str
    seq: int
    start: datetime
    slot_s: float
    battery_w: tuple[float, ...]
    lease_until: datetime

    def site_w(self, now: datetime) -> float | None:
        if now >= self.lease_until or now < self.start:
            return None
        k = int((now - self.start).total_seconds() // self.slot_s)
        return self.battery_w[k] if k < len(self.battery_w) else None

    def as_row(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "seq": self.seq, "start": self.start.isoformat(),
                "slot_s": self.slot_s, "battery_w": list(self.battery_w), "lease_until": self.lease_until.isoformat()}

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> "Held":
        return cls(r["id"], r["kind"], int(r["seq"]), datetime.fromisoformat(r["start"]), float(r["slot_s"]),
                   tuple(float(w) for w in r["battery_w"]), datetime.fromisoformat(r["lease_until"]))


def _keep_reserve(slots_w: list[float], slot_s: float, cap: TownCapacity) -> tuple[list[float], bool]:
    """Cap discharge so the cumulative energy never goes below the floor (charge refills it,
    up to what can be charged). Returns (capped slots, whether anything was capped)."""
    e, full, out, capped = cap.headroom_wh, cap.headroom_wh + cap.room_wh, [], False
    h = slot_s / 3600.0
    for w in slots_w:
        if w > 0 and w * h > e + 1e-9:
            w, capped = max(e, 0.0) / h, True
        e = min(e - w * h, full)
        out.append(w)
    return out, capped


def _range_error(slots_w: Sequence[float], cap: TownCapacity) -> str | None:
    for k, w in enumerate(slots_w):
        if w > cap.max_discharge_w + 1e-6 or -w > cap.max_charge_w + 1e-6:
            return (f"slot {k}: {w:.0f} W outside the town's ratings "
                    f"[-{cap.max_charge_w:.0f}, {cap.max_discharge_w:.0f}] W")
    return None


def check_power_command(env: Envelope, now: datetime, cap: TownCapacity) -> tuple[Outcome, Held | None]:
    """Decide a plan or dispatch command (see module doc); the lease and order checks come
    first (:func:`check_order`). Raises :class:`BusMessageError` for a malformed body."""
    b = env.body
    if env.kind == "plans":
        start, slot_s = body_time(b, "start"), number(b, "slot_s", lo=60, hi=3600)
        w = b.get("battery_w")
        if not isinstance(w, list) or not 0 < len(w) <= MAX_PLAN_SLOTS:
            raise BusMessageError(f"body.battery_w: expected a list of 1..{MAX_PLAN_SLOTS} numbers")
        slots = [number({"battery_w": x}, "battery_w") for x in w]
    else:
        start, end = body_time(b, "start"), body_time(b, "end")
        if end <= start:
            raise BusMessageError("body.end: must be after body.start")
        sp = number(b, "setpoint_w")
        slot_s, slots = (end - start).total_seconds(), [sp]
    if not cap.batteries:
        return Outcome("rejected", "device_unavailable", {"detail": "no battery with a fresh reading"}), None
    err = _range_error(slots, cap)
    if err:
        return Outcome("rejected", "out_of_range", {"detail": err}), None
    # the reserve from now on: slots already past do not count
    k0 = max(int((now - start).total_seconds() // slot_s), 0)
    tail, capped = _keep_reserve(slots[k0:], slot_s, cap)
    slots = slots[:k0] + tail
    held = Held(env.id, env.kind, env.seq, start, slot_s, tuple(slots), env.lease_until)
    detail = {"accepted_w": [round(x, 1) for x in slots] if env.kind == "plans" else round(slots[0], 1)}
    return (Outcome("partial", "reserve_floor", detail) if capped else Outcome("applied", "", detail)), held


def check_policy(env: Envelope, now: datetime, cap: TownCapacity) -> Outcome:
    """Decide a reserve-policy command: the same bounds as the operator's ``set_reserve``,
    and never below the town's configured floor."""
    b = env.body
    floor = number(b, "floor_pct", lo=0, hi=100) if "floor_pct" in b else None
    if floor is not None and floor < cap.config_floor_pct:
        return Outcome("rejected", "below_local_floor",
                       {"detail": f"floor_pct {floor} below the town's configured {cap.config_floor_pct} %"})
    storm = b.get("storm")
    if storm is not None and not isinstance(storm, bool):
        raise BusMessageError(f"body.storm: expected true/false, got {storm!r}")
    if storm:
        if "storm_target_pct" in b:
            number(b, "storm_target_pct", lo=0, hi=100)
        if body_time(b, "storm_deadline") <= now:
            return Outcome("rejected", "in_past", {"detail": "storm_deadline must be in the future"})
    return Outcome("applied", "", {"floor_pct": floor, "storm": storm})


def check_order(env: Envelope, now: datetime, newest_seq: int) -> Outcome | None:
    """The lease and order rules every command passes first: an :class:`Outcome` that stops
    it, or None."""
    if env.expired(now):
        return Outcome("expired", "lease_expired", {"lease_until": env.lease_until.isoformat()})
    if env.seq <= newest_seq:
        return Outcome("superseded", "out_of_order", {"newest_seq": newest_seq})
    return None


class CommandBook:
    """The applied plan and dispatch (see module doc); ``book(now)`` is a dispatch source."""

    def __init__(self, batteries: Callable[[datetime], Sequence[BatteryState]],
                 fallback: Callable[[datetime], Mapping[str, Proposal]] | None = None) -> None:
        self.batteries, self.fallback = batteries, fallback
        self.held: dict[str, Held] = {}  #: kind -> applied command

    def hold(self, h: Held) -> None:
        self.held[h.kind] = h

    def in_force(self, now: datetime) -> tuple[Held, float] | None:
        """The command in force at ``now`` and its site power [W]: a dispatch before a plan."""
        for kind in ("dispatches", "plans"):
            h = self.held.get(kind)
            if h is not None:
                w = h.site_w(now)
                if w is not None and math.isfinite(w):
                    return h, w
        return None

    def expire(self, now: datetime) -> list[Held]:
        """Drop commands whose lease is over; returns them."""
        gone = [h for h in self.held.values() if now >= h.lease_until]
        for h in gone:
            del self.held[h.kind]
        return gone

    def __call__(self, now: datetime) -> dict[str, Proposal]:
        self.expire(now)
        got = self.in_force(now)
        if got is None:
            return dict(self.fallback(now)) if self.fallback is not None else {}
        h, w = got
        shares = split_by_headroom(w, list(self.batteries(now)))
        return {dev: Proposal("dispatch", s, reason=f"central {h.kind[:-1]} {h.id} (lease to {h.lease_until:%H:%M:%S})")
                for dev, s in shares.items()}


def lease(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)
