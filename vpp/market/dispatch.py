"""Aggregator dispatches: validation (shared by REST and OpenADR), the ledger, and the book
the control loop reads.

A dispatch instructs the site's batteries over a window ``[start, end)`` inside an accepted
award. Instruction types (site level, kW at the edge, W inside; > 0 = discharge):

* ``setpoint`` — total battery power ``value`` [W];
* ``delta``    — ``value`` [W] >= 0 on top of the plan in the award's direction;
* ``soc_target`` — move the fleet's mean SoC to ``value`` [fraction] by ``end``, at most the
  awarded power.

:func:`check_dispatch` decides ``accepted`` / ``partial`` / ``rejected`` with reason codes:

* ``storm_mode`` — storm mode is on: the reserve is being built, nothing is dispatched;
* ``device_unavailable`` — no battery has a fresh reading;
* ``outside_award`` — window outside the award's accepted slots, wrong direction, or more
  power than accepted (capped to the award);
* ``reserve_floor`` — more than the flexibility above the reserve floor (capped to it).

:class:`DispatchBook` holds the live dispatches and is the controller's ``dispatch_source``:
at ``now`` the active dispatch's site setpoint is split across batteries by their headroom
above the floor (discharge) or below ``soc_max`` (charge). The reserve layer of the control
loop still clips every setpoint (the floor holds even if a dispatch is wrong).

Direction: a dispatch never works against its award. ``setpoint`` and ``delta`` move the
site power from the plan only in the award's direction (checked at creation); a
``soc_target`` dispatch under an ``up`` award never charges and under a ``down`` award never
discharges (its power is clipped to ``[0, accepted]`` or ``[−accepted, 0]``).

Storm mode (the book's ``storm()``): while it is on, a dispatch whose window is open is
*suspended*: the book proposes nothing for it, its state is ``suspended`` with reason
``storm_mode``. Resume policy: at the first control step after storm mode ends, a suspended
dispatch whose window is still open (``now < end``, not cancelled) resumes (``soc_target``
recomputes its power over the time left); one whose window closed during the storm stays
suspended and reads ``completed``. Each suspension and resumption is a ``dispatch`` record
(``action`` suspend / resume, ``ref`` = dispatch id) with its ``ack`` (the unchanged status,
``state`` and ``reasons`` = the suspension's reason).

Ledger: each write appends a ``dispatch`` record (``payload.action`` = create / modify /
cancel, ``ref`` = award id for create, dispatch id otherwise) and its ``ack`` record
(``ref`` = dispatch id) in one transaction: both are stored or neither. :meth:`DispatchBook.load` rebuilds the book from the ledger after
a restart.
"""
from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from vpp.control.bounds import Proposal
from vpp.market.flexibility import FlexSlot
from vpp.market.ledger import IdempotencyConflict, Ledger, LedgerRecord, NewRecord, canonical_hash
from vpp.slots import SLOT, covering

Kind = Literal["setpoint", "delta", "soc_target"]
Status = Literal["accepted", "partial", "rejected", "cancelled"]
from vpp.market.dispatch_records import (  # noqa: F401 - the records live there; re-exported
    BACKWARD_STEP_S, MAX_DISPATCH, REASONS, BatteryState, Dispatch, DispatchChange, DispatchError, DispatchRequest,
    Verdict, _floor_slot, _iso, _parse, award_slots, check_dispatch, merge_request, request_error, split_by_headroom,
)



def battery_states(controller: Any, now: datetime) -> list[BatteryState]:
    """Each battery of ``controller`` with a usable SoC at ``now``: SoC, the floor in force and
    its ratings (batteries without a finite SoC are left out)."""
    out = []
    for b in controller.batteries:
        snap, _ = controller.snapshot(b.id, now)
        if snap is None or not math.isfinite(snap.values.get("soc", math.nan)):
            continue
        r = b.ratings
        out.append(BatteryState(b.id, float(snap.values["soc"]), float(controller.floor_at(b, [now])[0]),
                                r.soc_max, r.capacity_wh, r.max_charge_w, r.max_discharge_w))
    return out

class DispatchBook:
    """Live dispatches; ``book(now)`` is the controller's ``dispatch_source``.

    ``batteries(now)`` returns the fresh :class:`BatteryState` per battery (missing = not
    usable), ``plan_w(now)`` the plan's site battery power [W] (None without a plan).
    :meth:`attach` wires both to a :class:`vpp.control.loop.Controller`.
    """

    def __init__(self, batteries: Callable[[datetime], list[BatteryState]] | None = None,
                 plan_w: Callable[[datetime], float | None] | None = None,
                 storm: Callable[[], bool] | None = None, ledger: Ledger | None = None) -> None:
        self._lock = threading.RLock()
        self.dispatches: dict[str, Dispatch] = {}
        self.batteries = batteries or (lambda now: [])
        self.plan_w = plan_w or (lambda now: None)
        #: whether storm mode is on (suspends running dispatches); :meth:`attach` wires it
        self.storm = storm or (lambda: False)
        #: where suspensions and resumptions are recorded (:meth:`load` sets it)
        self.ledger = ledger

    # -- wiring ---------------------------------------------------------------------------
    def attach(self, controller: Any) -> "DispatchBook":
        """Read SoC, floors and plan from ``controller`` and become its ``dispatch_source``."""

        def batteries(now: datetime) -> list[BatteryState]:
            return battery_states(controller, now)

        def plan_w(now: datetime) -> float | None:
            p = controller.plan
            if p is None:
                return None
            s = p.schedule
            k = int((now - s.start).total_seconds() // s.slot_s)
            if not 0 <= k < s.n:
                return None
            return float(sum(w[k] for w in s.battery_w.values()))

        self.batteries, self.plan_w = batteries, plan_w
        self.storm = lambda: bool(controller.storm.active)
        controller.dispatch_source = self
        return self

    # -- the controller hook ---------------------------------------------------------------
    def active(self, now: datetime) -> Dispatch | None:
        """The dispatch in force at ``now`` (the newest running one; suspended ones are not)."""
        with self._lock:
            live = [d for d in self.dispatches.values() if d.active(now) and not d.suspended]
        return max(live, key=lambda d: d.updated_at) if live else None

    def follow_storm(self, now: datetime) -> list[Dispatch]:
        """Suspend every open dispatch while storm mode is on; resume those still open once it
        is off (see the module doc). Returns the dispatches that changed."""
        storm = bool(self.storm())
        changed = []
        with self._lock:
            for d in self.dispatches.values():
                if storm and d.active(now) and not d.suspended:
                    d.suspended, d.suspended_at, d.last_setpoints = "storm_mode", now, {}
                    self._record_suspension(d, "suspend", now)
                    changed.append(d)
                elif not storm and d.suspended and d.active(now):
                    d.suspended, d.resumed_at = None, now
                    self._record_suspension(d, "resume", now)
                    changed.append(d)
        return changed

    def _record_suspension(self, d: Dispatch, action: str, now: datetime) -> None:
        if self.ledger is None:
            return
        reason = d.suspended or "storm_mode"
        detail = ("storm mode: the reserve is being built" if action == "suspend"
                  else "storm mode ended inside the dispatch window")
        (rec, _), = self.ledger.record_many([NewRecord("dispatch", "system", {
            "action": action, "ref": d.id, "request": None, "direction": d.direction, "reason": reason,
            "at": _iso(now)}, ref=d.id)])
        self.ledger.record_many([NewRecord("ack", "system", {
            "status": d.status, "accepted_w": d.accepted_w, "reasons": [reason],
            "state": "suspended" if action == "suspend" else "active", "detail": detail}, ref=rec.id)])

    def site_setpoint(self, d: Dispatch, now: datetime, bats: Sequence[BatteryState]) -> float:
        """Site battery power [W] the dispatch asks for at ``now`` (capped at its accepted power)."""
        sign = 1.0 if d.direction == "up" else -1.0
        plan = self.plan_w(now) or 0.0
        r = d.request
        if r.kind == "setpoint":
            delta = min(max(sign * (r.value - plan), 0.0), d.accepted_w)
            return plan + sign * delta
        if r.kind == "delta":
            return plan + sign * min(r.value, d.accepted_w)
        # soc_target: the power that reaches the target mean SoC at ``end``
        cap = sum(b.capacity_wh for b in bats)
        if cap <= 0:
            return 0.0
        soc = sum(b.soc * b.capacity_wh for b in bats) / cap
        hours = max((r.end - now).total_seconds() / 3600.0, 1 / 60)
        w = (soc - r.value) * cap / hours
        # never against the award: "up" only discharges, "down" only charges
        return min(d.accepted_w, max(w, 0.0)) if d.direction == "up" else max(-d.accepted_w, min(w, 0.0))

    def __call__(self, now: datetime) -> dict[str, Proposal]:
        self.follow_storm(now)
        d = self.active(now)
        if d is None:
            return {}
        bats = self.batteries(now)
        site = self.site_setpoint(d, now, bats)
        shares = split_by_headroom(site, bats)
        d.last_setpoints = shares
        return {dev: Proposal("dispatch", w, reason=f"dispatch {d.id} ({d.request.kind})")
                for dev, w in shares.items()}

    # -- ledger ---------------------------------------------------------------------------
    def load(self, ledger: Ledger) -> int:
        """Rebuild from ``dispatch``/``ack`` records (ledger order); returns how many. Later
        suspensions and resumptions are recorded in ``ledger``."""
        with self._lock:
            self.ledger = ledger
            self.dispatches.clear()
            acks = {r.ref: r for r in ledger.query(kinds=["ack"])}
            for r in ledger.query(kinds=["dispatch"]):
                p = r.payload
                ack = acks.get(r.id)
                if p.get("action") == "create":
                    q = p["request"]
                    req = DispatchRequest(q["award_id"], q["kind"], _parse(q["start"]), _parse(q["end"]),
                                          float(q["value"]))
                    a = ack.payload if ack else {"status": "rejected", "accepted_w": 0.0, "reasons": []}
                    self.dispatches[r.id] = Dispatch(r.id, req, p["direction"], a["status"], float(a["accepted_w"]),
                                                     tuple(a["reasons"]), r.ts, r.ts)
                elif r.ref in self.dispatches:
                    self._apply_change(self.dispatches[r.ref], r, ack)
            return len(self.dispatches)

    def _apply_change(self, d: Dispatch, r: LedgerRecord, ack: LedgerRecord | None) -> None:
        p = r.payload
        if p.get("action") == "cancel":
            d.cancelled_at, d.updated_at = r.ts, r.ts
        elif p.get("action") == "suspend":
            d.suspended, d.suspended_at = p.get("reason") or "storm_mode", r.ts
        elif p.get("action") == "resume":
            d.suspended, d.resumed_at = None, r.ts
        elif p.get("action") == "modify" and ack is not None and ack.payload["status"] != "rejected":
            q = p["request"]
            d.request = DispatchRequest(q["award_id"], q["kind"], _parse(q["start"]), _parse(q["end"]),
                                        float(q["value"]))
            d.status, d.accepted_w = ack.payload["status"], float(ack.payload["accepted_w"])
            d.reasons, d.updated_at = tuple(ack.payload["reasons"]), r.ts
            d.started_at, d._seen, d._back_s = None, None, 0.0  # a new window: it starts when its start comes

    def get(self, dispatch_id: str) -> Dispatch | None:
        with self._lock:
            return self.dispatches.get(dispatch_id)

    def stored(self, ledger: Ledger, dispatch_id: str) -> Dispatch:
        """The dispatch of a replayed key; reloads the book once when another writer (or a
        process that died before updating its book) stored it."""
        with self._lock:
            if dispatch_id not in self.dispatches:
                self.load(ledger)
            d = self.dispatches.get(dispatch_id)
        if d is None:
            raise DispatchError(f"dispatch {dispatch_id!r} not found", 404, "not_found")
        return d

    def record(self, ledger: Ledger, actor: str, key: str, action: str, req: DispatchRequest | None,
               verdict: Verdict, *, direction: str, ref: str, source: str = "rest") -> tuple[Dispatch, bool]:
        """Append the ``dispatch`` and its ``ack`` record in one transaction and update the
        book (a dispatch without an ack, only found in ledgers written before that, loads as
        rejected).

        Idempotent on ``key`` (scoped per action and actor): a replay returns the stored
        dispatch; a different request under the same key raises
        :class:`~vpp.market.ledger.IdempotencyConflict`.
        """
        request = {"action": action, "ref": ref, "request": req.as_dict() if req else None}
        scoped = f"dispatch:{action}:{actor}:{key}"
        with self._lock:
            old = ledger.get_by_key(scoped)
            if old is not None:
                if old.request_hash != canonical_hash(request):
                    raise IdempotencyConflict(key, old)
                return self.stored(ledger, old.id if action == "create" else old.ref), False
            payload = {**request, "direction": direction, "source": source}
            ack = {"status": verdict.status, "accepted_w": verdict.accepted_w, "reasons": list(verdict.reasons),
                   "detail": verdict.detail}
            # one transaction: a failed ack leaves no dispatch behind (its retry starts afresh)
            did = uuid.uuid4().hex
            (rec, _), (ack_rec, _) = ledger.record_many([
                NewRecord("dispatch", actor, payload, ref=ref, idempotency_key=scoped,
                          request_hash=canonical_hash(request), id=did),
                NewRecord("ack", actor, ack, ref=did)])
            if action == "create":
                assert req is not None
                d = Dispatch(rec.id, req, direction, verdict.status, verdict.accepted_w,  # type: ignore[arg-type]
                             verdict.reasons, rec.ts, rec.ts)
                self.dispatches[rec.id] = d
            else:
                d = self.dispatches[ref]
                self._apply_change(d, rec, ack_rec)
            return d, True


class DispatchService:
    """Create / modify / cancel dispatches: one validation path for REST and OpenADR.

    ``flexibility(start, end)`` gives the site's flexibility above the reserve floor,
    ``storm()`` whether storm mode is on, ``floor_soc()`` the mean reserve floor [fraction].
    """

    def __init__(self, ledger: Ledger, book: DispatchBook, flexibility: Callable[[datetime, datetime], list[FlexSlot]],
                 clock: Callable[[], datetime], storm: Callable[[], bool] = lambda: False,
                 floor_soc: Callable[[], float | None] = lambda: None,
                 plan_baseline: Callable[[datetime, datetime], dict[str, float] | None] | None = None) -> None:
        self.ledger, self.book, self.flexibility, self.clock = ledger, book, flexibility, clock
        self.storm, self.floor_soc = storm, floor_soc
        #: planned net import [W] per slot (ISO start → W) over a window; frozen in the ledger
        #: as a ``baseline_plan`` record when a dispatch is accepted (the plan moves on later)
        self.plan_baseline = plan_baseline

    def award(self, award_id: str) -> LedgerRecord | None:
        rec = self.ledger.get(award_id)
        return rec if rec is not None and rec.kind == "award" else None

    def evaluate(self, req: DispatchRequest) -> Verdict:
        now = self.clock()
        if req.end <= req.start:
            raise DispatchError("end must be after start")
        if req.end <= now:
            raise DispatchError(f"window ends in the past (now {_iso(now)})", code="in_past")
        award = self.award(req.award_id)
        a, e = covering(req.start, req.end)
        available = bool(self.book.batteries(now))
        flex = self.flexibility(a, e) if award is not None and available else []
        return check_dispatch(req, award, flex, storm=self.storm(), devices_available=available,
                              plan_w=self.book.plan_w(max(req.start, now)), floor_soc=self.floor_soc())

    def create(self, actor: str, key: str, req: DispatchRequest, source: str = "rest") -> tuple[Dispatch, bool]:
        replay = self._replay("create", actor, key, None, req)
        if replay:
            return replay
        verdict = self.evaluate(req)
        award = self.award(req.award_id)
        direction = award.payload.get("direction", "up") if award else "up"
        d, created = self.book.record(self.ledger, actor, key, "create", req, verdict, direction=direction,
                                      ref=req.award_id, source=source)
        if created and verdict.status != "rejected" and self.plan_baseline is not None:
            a, e = covering(req.start, req.end)
            slots = self.plan_baseline(a, e)
            if slots:
                self.ledger.record("baseline_plan", actor, {"dispatch_id": d.id, "import_w": slots}, ref=d.id,
                                   idempotency_key=f"baseline_plan:{d.id}", algorithm_version="plan-baseline/1")
        return d, created

    def modify(self, actor: str, key: str, dispatch_id: str, req: DispatchRequest,
               source: str = "rest") -> tuple[Dispatch, bool, Verdict]:
        d = self._live(dispatch_id)
        replay = self._replay("modify", actor, key, dispatch_id, req)
        if replay:
            return replay[0], False, Verdict(replay[0].status, replay[0].accepted_w, replay[0].reasons)  # type: ignore[arg-type]
        if req.award_id != d.request.award_id:
            raise DispatchError("a dispatch cannot move to another award", code="award_changed")
        verdict = self.evaluate(req)
        d, created = self.book.record(self.ledger, actor, key, "modify", req, verdict, direction=d.direction,
                                      ref=dispatch_id, source=source)
        return d, created, verdict

    def patch(self, actor: str, key: str, dispatch_id: str, change: DispatchChange,
              source: str = "rest") -> tuple[Dispatch, bool]:
        """Apply ``change`` to a live dispatch (:func:`merge_request`) and re-decide it like a
        new one. A rejected modification leaves the dispatch unchanged and raises
        :class:`DispatchError` 409 ``modification_rejected``; 404 for an unknown dispatch."""
        d = self.book.get(dispatch_id)
        if d is None:
            raise DispatchError(f"dispatch {dispatch_id!r} not found", 404, "not_found")
        d, created, verdict = self.modify(actor, key, dispatch_id, merge_request(d.request, change), source)
        if verdict.status == "rejected":
            raise DispatchError(f"modification rejected ({', '.join(verdict.reasons)}): {verdict.detail}; "
                                "the dispatch is unchanged", 409, "modification_rejected")
        return d, created

    def cancel(self, actor: str, dispatch_id: str, source: str = "rest") -> Dispatch:
        d = self.book.get(dispatch_id)
        if d is None:
            raise DispatchError(f"dispatch {dispatch_id!r} not found", 404, "not_found")
        if d.cancelled_at is not None:
            return d
        v = Verdict("accepted", 0.0, ())
        return self.book.record(self.ledger, actor, f"cancel-{dispatch_id}", "cancel", None, v,
                                direction=d.direction, ref=dispatch_id, source=source)[0]

    def _live(self, dispatch_id: str) -> Dispatch:
        d = self.book.get(dispatch_id)
        if d is None:
            raise DispatchError(f"dispatch {dispatch_id!r} not found", 404, "not_found")
        if d.cancelled_at is not None or d.status == "rejected":
            raise DispatchError(f"dispatch {dispatch_id} is {d.state(self.clock())}", 409, "not_modifiable")
        return d

    def _replay(self, action: str, actor: str, key: str, ref: str | None,
                req: DispatchRequest) -> tuple[Dispatch, bool] | None:
        old = self.ledger.get_by_key(f"dispatch:{action}:{actor}:{key}")
        if old is None:
            return None
        request = {"action": action, "ref": ref if ref is not None else req.award_id, "request": req.as_dict()}
        if old.request_hash != canonical_hash(request):
            raise IdempotencyConflict(key, old)
        return self.book.stored(self.ledger, old.id if action == "create" else old.ref), False

    def find_award(self, start: datetime, end: datetime, direction: str | None = None) -> LedgerRecord | None:
        """The latest award whose accepted slots cover ``[start, end)`` (optionally in
        ``direction``): how a dispatch without an award id (OpenADR) finds its award."""
        t, needed = _floor_slot(start), []
        while t < end:
            needed.append(t)
            t += SLOT
        for rec in reversed(self.ledger.query(kinds=["award"])):
            if direction is not None and rec.payload.get("direction") != direction:
                continue
            slots = award_slots(rec)
            if needed and all(slots.get(s, 0.0) > 0 for s in needed):
                return rec
        return None
