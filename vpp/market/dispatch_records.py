"""Dispatch records and the rules every dispatch is checked against (REST and OpenADR
alike): the request, its PATCH merge, the verdict of :func:`check_dispatch` against the award
and the flexibility above the reserve floor, the dispatch's execution state (latched against
clock steps, suspended in storm mode) and the split of a site setpoint over batteries.
The book and the service that use them are :mod:`vpp.market.dispatch`."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from vpp.market.flexibility import FlexSlot
from vpp.market.ledger import LedgerRecord
from vpp.slots import SLOT, floor_time

Kind = Literal["setpoint", "delta", "soc_target"]
Status = Literal["accepted", "partial", "rejected", "cancelled"]
class DispatchError(Exception):
    """A dispatch request the rules refuse outright (HTTP 404/409/422)."""

    def __init__(self, message: str, status: int = 422, code: str = "invalid") -> None:
        super().__init__(message)
        self.status, self.code = status, code



REASONS = ("reserve_floor", "storm_mode", "device_unavailable", "outside_award")


@dataclass(frozen=True, slots=True)
class DispatchRequest:
    award_id: str
    kind: Kind
    start: datetime
    end: datetime
    value: float  #: W for setpoint/delta, fraction for soc_target

    def as_dict(self) -> dict[str, Any]:
        return {"award_id": self.award_id, "kind": self.kind, "start": _iso(self.start),
                "end": _iso(self.end), "value": self.value}


#: A clock reading this much [s] earlier than the last one is a backward step (smaller: callers racing).
BACKWARD_STEP_S = 1.0
#: Longest dispatch window.
MAX_DISPATCH = timedelta(days=7)


def request_error(kind: str, start: datetime, end: datetime, value: float | None,
                  soc_target: float | None) -> str | None:
    """Why a dispatch request is malformed (None when it is well-formed): ``end`` after
    ``start`` within :data:`MAX_DISPATCH`; ``soc_target`` carries ``soc_target`` only, the
    other kinds ``value`` [W] only; a ``delta`` is >= 0 (the award gives the direction)."""
    if end <= start:
        return "end must be after start"
    if end - start > MAX_DISPATCH:
        return f"window must not exceed {MAX_DISPATCH.days} days"
    if kind == "soc_target":
        if soc_target is None or value is not None:
            return "soc_target needs soc_target (and no value_kw)"
    elif value is None or soc_target is not None:
        return f"{kind} needs value_kw (and no soc_target)"
    if kind == "delta" and value is not None and value < 0:
        return "delta value_kw must be >= 0 (the award gives the direction)"
    return None


@dataclass(frozen=True, slots=True)
class DispatchChange:
    """A modification (PATCH): the fields given replace the request's, the rest stay
    (``value`` [W] for setpoint/delta, ``soc_target`` [fraction])."""

    kind: Kind | None = None
    start: datetime | None = None
    end: datetime | None = None
    value: float | None = None
    soc_target: float | None = None


def merge_request(old: DispatchRequest, change: DispatchChange) -> DispatchRequest:
    """``old`` with ``change`` applied; the result must be well-formed like a new request
    (:func:`request_error`), else :class:`DispatchError` (422). Changing the kind between
    soc_target and a power drops the old value: the change must give the new one."""
    kind = change.kind or old.kind
    start, end = change.start or old.start, change.end or old.end
    value = soc = None
    if kind == "soc_target":
        soc = change.soc_target if change.soc_target is not None else (
            old.value if old.kind == "soc_target" else None)
    else:
        value = change.value if change.value is not None else (old.value if old.kind != "soc_target" else None)
    why = request_error(kind, start, end, value, soc)
    if why is not None:
        raise DispatchError(f"modified dispatch is invalid: {why}")
    return DispatchRequest(old.award_id, kind, start, end, float(soc if kind == "soc_target" else value))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Literal["accepted", "partial", "rejected"]
    accepted_w: float  #: |power| [W] the site commits to (for soc_target: the power cap)
    reasons: tuple[str, ...]
    detail: str = ""


@dataclass
class Dispatch:
    id: str
    request: DispatchRequest
    direction: Literal["up", "down"]
    status: Status
    accepted_w: float
    reasons: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    cancelled_at: datetime | None = None
    #: last site setpoint the book produced, per device [W]
    last_setpoints: dict[str, float] = field(default_factory=dict)
    #: why the dispatch is suspended (``storm_mode``), None while it runs
    suspended: str | None = None
    suspended_at: datetime | None = None
    resumed_at: datetime | None = None

    #: when it was first seen running / over; latched, so a backward clock step neither
    #: sends a started dispatch back to pending nor re-activates a completed one
    started_at: datetime | None = None
    completed_at: datetime | None = None
    #: once started: the latest time seen and how far [s] the clock has stepped back since,
    #: so the window ends after its length of running time, not again at its wall-clock end
    _seen: datetime | None = field(default=None, repr=False)
    _back_s: float = field(default=0.0, repr=False)

    def _running_time(self, now: datetime) -> datetime:
        if self.started_at is None or self.completed_at is not None:
            return now
        if self._seen is not None and (self._seen - now).total_seconds() > BACKWARD_STEP_S:
            self._back_s += (self._seen - now).total_seconds()
        if self._seen is None or now > self._seen or (self._seen - now).total_seconds() > BACKWARD_STEP_S:
            self._seen = now
        return now + timedelta(seconds=self._back_s)

    def observe(self, now: datetime) -> datetime:
        """Latch ``started_at`` / ``completed_at`` from the window and ``now``; returns the
        running time the window is judged on (``now`` plus any backward clock step since it started)."""
        if self.status not in ("accepted", "partial") or self.cancelled_at is not None:
            return now
        t = self._running_time(now)
        if self.started_at is None and self.request.start <= t < self.request.end:
            self.started_at = self._seen = now
        if self.completed_at is None and t >= self.request.end:
            self.completed_at = now
        return t

    def active(self, now: datetime) -> bool:
        """Accepted, not cancelled and inside its window (suspended or not)."""
        t = self.observe(now)
        return (self.status in ("accepted", "partial") and self.cancelled_at is None
                and self.completed_at is None and (self.started_at is not None or self.request.start <= t)
                and t < self.request.end)

    def state(self, now: datetime) -> str:
        """Execution state: pending / active / suspended / completed / cancelled / rejected."""
        if self.status == "rejected":
            return "rejected"
        if self.cancelled_at is not None:
            return "cancelled"
        t = self.observe(now)
        if self.completed_at is not None:
            return "completed"
        if t < self.request.start and self.started_at is None:
            return "pending"
        if t >= self.request.end:
            return "completed"
        return "suspended" if self.suspended else "active"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def award_slots(award: LedgerRecord) -> dict[datetime, float]:
    """Accepted power [W] per slot start of an award."""
    return {_parse(s["start"]): float(s["accepted_w"]) for s in award.payload["slots"]}


def check_dispatch(
    req: DispatchRequest,
    award: LedgerRecord | None,
    flex: Sequence[FlexSlot],
    *,
    storm: bool,
    devices_available: bool,
    plan_w: float | None = None,
    floor_soc: float | None = None,
) -> Verdict:
    """Decide a dispatch request (pure; see the module docstring for the reason codes).

    ``flex`` covers the window's slots (W above the reserve floor), ``plan_w`` is the plan's
    site battery power [W] at the window start (``setpoint`` is checked as a delta on it;
    0 without a plan), ``floor_soc`` the reserve floor [fraction] for ``soc_target``.
    """
    if award is None:
        return Verdict("rejected", 0.0, ("outside_award",), "award not found")
    if storm:
        return Verdict("rejected", 0.0, ("storm_mode",), "storm mode: the reserve is being built")
    if not devices_available:
        return Verdict("rejected", 0.0, ("device_unavailable",), "no battery has a fresh reading")
    direction = award.payload.get("direction", "up")
    slots = award_slots(award)
    t, needed = _floor_slot(req.start), []
    while t < req.end:
        needed.append(t)
        t += SLOT
    if not needed or any(slots.get(s, 0.0) <= 0 for s in needed):
        return Verdict("rejected", 0.0, ("outside_award",), "window is not inside the award's accepted slots")
    awarded = min(slots[s] for s in needed)
    fmap = {f.start: (f.up_w if direction == "up" else f.down_w) for f in flex}
    room = min(fmap.get(s, 0.0) for s in needed)
    sign = 1.0 if direction == "up" else -1.0
    reasons: list[str] = []
    if req.kind == "soc_target":
        want = awarded
        if floor_soc is not None and req.value < floor_soc - 1e-9:
            return Verdict("rejected", 0.0, ("reserve_floor",),
                           f"target SoC {req.value:.2f} is below the reserve floor {floor_soc:.2f}")
    else:
        delta = req.value if req.kind == "delta" else sign * (req.value - (plan_w or 0.0))
        if delta < -1e-9:
            return Verdict("rejected", 0.0, ("outside_award",),
                           f"instruction goes against the award direction ({direction})")
        want = max(delta, 0.0)
    got = want
    if got > awarded + 1e-6:
        got = awarded
        reasons.append("outside_award")
    if got > room + 1e-6:
        got = room
        reasons.append("reserve_floor")
    if want > 0 and got <= 1e-6:
        return Verdict("rejected", 0.0, tuple(reasons), "no power left above the reserve floor")
    return Verdict("partial" if reasons else "accepted", float(got), tuple(reasons))


_floor_slot = floor_time


@dataclass(frozen=True, slots=True)
class BatteryState:
    """What the book needs per battery at ``now``: SoC and limits [fraction, Wh, W]."""

    id: str
    soc: float
    floor: float
    soc_max: float
    capacity_wh: float
    max_charge_w: float
    max_discharge_w: float


def split_by_headroom(site_w: float, batteries: Sequence[BatteryState]) -> dict[str, float]:
    """Split a site setpoint [W] (> 0 discharge) across batteries in proportion to their
    energy headroom: ``(soc − floor)⁺·C`` for discharge, ``(soc_max − soc)⁺·C`` for charge;
    each share capped by its rating (the remainder is not redistributed past the ratings)."""
    if not batteries:
        return {}
    if site_w >= 0:
        room = [max(b.soc - b.floor, 0.0) * b.capacity_wh for b in batteries]
        cap = [b.max_discharge_w for b in batteries]
    else:
        room = [max(b.soc_max - b.soc, 0.0) * b.capacity_wh for b in batteries]
        cap = [b.max_charge_w for b in batteries]
    total = sum(room)
    if total <= 0:
        return {b.id: 0.0 for b in batteries}
    out: dict[str, float] = {}
    left, free = abs(site_w), list(range(len(batteries)))
    # water-filling: shares by headroom, those hitting their rating drop out
    while free and left > 1e-9:
        tot = sum(room[i] for i in free)
        if tot <= 0:
            break
        capped = [i for i in free if left * room[i] / tot >= cap[i]]
        if not capped:
            for i in free:
                out[batteries[i].id] = out.get(batteries[i].id, 0.0) + left * room[i] / tot
            left = 0.0
            break
        for i in capped:
            out[batteries[i].id] = cap[i]
            left -= cap[i]
            free.remove(i)
    sgn = 1.0 if site_w >= 0 else -1.0
    return {b.id: sgn * out.get(b.id, 0.0) for b in batteries}
