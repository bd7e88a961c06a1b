"""Offers to the aggregator and the awards it sends back, recorded in the ledger.

Rules enforced here (the HTTP layer only checks shapes):

* Offer and award slots start on 30-min boundaries, lie in the future (``start >= now``),
  and one request spans at most :data:`MAX_WINDOW`.
* An award names an existing offer (else :class:`NotFound`), covers only offered slots, and
  the sum of awards per slot never exceeds the offered capacity (else :class:`Invalid`).
* Deliverability (third lock on the disaster reserve): each awarded slot is accepted up to
  the flexibility left after earlier accepted awards; a shortfall is recorded per slot with
  reason ``reserve_floor`` and the award's status becomes ``partial`` or ``refused``.
* Offers (:meth:`MarketService.submit_offer`): a ``product`` must be a row of the EPRX
  table and the slots meet its rules (:func:`vpp.market.products.check_offer`: gate closure,
  step, trading unit, and the minimum lot unless ``pooled``); and every slot must be
  deliverable — at most the slot's pessimistic flexibility (power − uncertainty band) left
  after accepted awards — else it is refused naming the deliverable kW, unless the request
  carries an explicit ``override`` reason, which is recorded in the offer with the figures.
* Idempotency: every write carries a client key, scoped per kind and actor. A replay with
  the same request returns the original record, with a different one raises
  :class:`~vpp.storage.ledger.IdempotencyConflict`. Keys are checked before time rules so
  a late replay still returns the original.

Amounts are W internally; each slot is ``{"start": ISO UTC, ...}`` in stored payloads.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from vpp.market.flexibility import FlexSlot
from vpp.market.ledger import IdempotencyConflict, Ledger, LedgerRecord, canonical_hash
from vpp.slots import SLOT

MAX_WINDOW = timedelta(days=7)

FlexibilityFn = Callable[[datetime, datetime], list[FlexSlot]]


class MarketError(Exception):
    """A request the market rules refuse; ``status`` is the HTTP status to report."""

    status = 422
    code = "invalid"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class Invalid(MarketError):
    status = 422


class NotFound(MarketError):
    status = 404
    code = "not_found"


@dataclass(frozen=True, slots=True)
class SlotAmount:
    """``power_w`` [W] >= 0 over the 30-min slot starting at ``start`` (tz-aware)."""

    start: datetime
    power_w: float


@dataclass(frozen=True)
class OfferSlot:
    """The one offer record: what the site offers the aggregator for one 30-min slot.

    ``start`` (UTC), ΔkW offered ``up_w`` (more discharge / less charge) / ``down_w`` (more
    charge) [W], capacity prices [currency/kW per slot] and energy prices [currency/kWh]
    (NaN = none: not offered), ``spot`` [currency/kWh], ``expected_revenue`` [currency] =
    capacity payment + activation ratio × energy payment, ``reason`` why nothing is offered
    or why the offer was cut (else empty), ``removed`` when a storm, a warning or the clock
    took the slot out. The day-ahead bid (:mod:`vpp.market.bids`, where it is ``BidSlot``)
    is made of these; the optimiser's per-slot ``optimizer.Offer`` is converted into it.
    """

    start: datetime
    up_w: float
    down_w: float
    capacity_price_up: float
    capacity_price_down: float
    energy_price_up: float
    energy_price_down: float
    spot: float
    expected_revenue: float
    reason: str = ""
    removed: bool = False

    @property
    def capacity_payment(self) -> float:
        """Paid whether dispatched or not [currency]."""
        cu = self.capacity_price_up if math.isfinite(self.capacity_price_up) else 0.0
        cd = self.capacity_price_down if math.isfinite(self.capacity_price_down) else 0.0
        return (cu * self.up_w + cd * self.down_w) / 1e3


@dataclass(frozen=True, slots=True)
class Written:
    record: LedgerRecord
    created: bool


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


class MarketService:
    """Validates and records offers and awards; see the module docstring for the rules."""

    def __init__(self, ledger: Ledger, flexibility: FlexibilityFn, clock: Callable[[], datetime]) -> None:
        self.ledger = ledger
        self.flexibility = flexibility
        self.clock = clock
        # check-then-append must be atomic so two awards cannot both take the last capacity
        self._lock = threading.Lock()

    # -- offers -------------------------------------------------------------------------
    def submit_offer(
        self,
        actor: str,
        idempotency_key: str,
        slots: Sequence[SlotAmount],
        *,
        direction: Literal["up", "down"] = "up",
        product: str | None = None,
        price_per_kwh: float | None = None,
        pooled: bool = True,
        dispatch: str | None = None,
        override: str | None = None,
    ) -> Written:
        request = {"direction": direction, "product": product, "price_per_kwh": price_per_kwh,
                   "slots": [{"start": _iso(s.start), "power_w": s.power_w} for s in slots]}
        if not pooled or dispatch is not None or override is not None:  # older requests hash as before
            request.update(pooled=pooled, dispatch=dispatch, override=override)
        with self._lock:
            replay = self._replay("offer", actor, idempotency_key, request)
            if replay:
                return replay
            ordered = self._check_slots(slots)
            self._check_product(product, ordered, pooled, dispatch)
            over = self._check_deliverable(ordered, direction, override)
            payload = {**{k: v for k, v in request.items() if k != "override"}, "pooled": pooled, "dispatch": dispatch,
                       "slots": [{"start": _iso(s.start), "power_w": float(s.power_w)} for s in ordered],
                       "window": {"start": _iso(ordered[0].start), "end": _iso(ordered[-1].start + SLOT)}}
            if over is not None:  # only an override that was needed is recorded
                payload["override"] = over
            rec, created = self.ledger.record("offer", actor, payload,
                                              idempotency_key=_scoped("offer", actor, idempotency_key),
                                              request_hash=canonical_hash(request))
            return Written(rec, created)

    def get_offer(self, offer_id: str) -> LedgerRecord:
        rec = self.ledger.get(offer_id)
        if rec is None or rec.kind != "offer":
            raise NotFound(f"offer {offer_id!r} not found")
        return rec

    # -- awards -------------------------------------------------------------------------
    def award(self, actor: str, idempotency_key: str, offer_id: str, slots: Sequence[SlotAmount]) -> Written:
        request = {"offer_id": offer_id, "slots": [{"start": _iso(s.start), "power_w": s.power_w} for s in slots]}
        with self._lock:
            replay = self._replay("award", actor, idempotency_key, request)
            if replay:
                return replay
            offer = self.get_offer(offer_id)
            ordered = self._check_slots(slots)
            offered = {_parse(s["start"]): s["power_w"] for s in offer.payload["slots"]}
            prior = self.ledger.query(kinds=["award"], ref=offer_id)
            already = _sum_by_slot(prior, "awarded_w")
            for s in ordered:
                if s.start not in offered:
                    raise Invalid(f"slot {_iso(s.start)} is not part of offer {offer_id}", "slot_not_offered")
                left = offered[s.start] - already.get(s.start, 0.0)
                if s.power_w > left + 1e-9:
                    raise Invalid(f"award {s.power_w:.0f} W at {_iso(s.start)} exceeds the offered capacity "
                                  f"left ({left:.0f} W of {offered[s.start]:.0f} W)", "exceeds_offer")
            accepted = self._deliverable(ordered, offer.payload["direction"])
            rows = []
            for s in ordered:
                acc = min(s.power_w, accepted[s.start])
                rows.append({"start": _iso(s.start), "awarded_w": float(s.power_w), "accepted_w": acc,
                             "reason": "" if acc >= s.power_w - 1e-9 else "reserve_floor"})
            total_awarded = sum(r["awarded_w"] for r in rows)
            total_accepted = sum(r["accepted_w"] for r in rows)
            status = ("accepted" if all(not r["reason"] for r in rows)
                      else "refused" if total_accepted <= 0 < total_awarded else "partial")
            payload = {"offer_id": offer_id, "direction": offer.payload["direction"], "status": status,
                       "slots": rows}
            rec, created = self.ledger.record("award", actor, payload, ref=offer_id,
                                              idempotency_key=_scoped("award", actor, idempotency_key),
                                              request_hash=canonical_hash(request))
            return Written(rec, created)

    def get_award(self, award_id: str) -> LedgerRecord:
        rec = self.ledger.get(award_id)
        if rec is None or rec.kind != "award":
            raise NotFound(f"award {award_id!r} not found")
        return rec

    # -- helpers ------------------------------------------------------------------------
    def _replay(self, kind: str, actor: str, key: str, request: dict[str, Any]) -> Written | None:
        rec = self.ledger.get_by_key(_scoped(kind, actor, key))
        if rec is None:
            return None
        if rec.request_hash != canonical_hash(request):
            raise IdempotencyConflict(key, rec)
        return Written(rec, False)

    def _check_slots(self, slots: Sequence[SlotAmount]) -> list[SlotAmount]:
        if not slots:
            raise Invalid("at least one slot is required", "no_slots")
        ordered = sorted(slots, key=lambda s: s.start)
        now = self.clock()
        for a, b in zip(ordered, ordered[1:]):
            if a.start == b.start:
                raise Invalid(f"slot {_iso(a.start)} appears twice", "duplicate_slot")
        for s in ordered:
            if s.start.tzinfo is None:
                raise Invalid("slot starts must carry a time zone", "naive_time")
            if s.start.timestamp() % SLOT.total_seconds():
                raise Invalid(f"slot {_iso(s.start)} is not on a 30-min boundary", "slot_boundary")
            if not s.power_w >= 0:
                raise Invalid(f"capacity at {_iso(s.start)} must be >= 0", "negative_capacity")
        if ordered[0].start < now:
            raise Invalid(f"slot {_iso(ordered[0].start)} is in the past (now {_iso(now)})", "in_past")
        if ordered[-1].start + SLOT - ordered[0].start > MAX_WINDOW:
            raise Invalid(f"window longer than {MAX_WINDOW.days} days", "window_too_long")
        return ordered

    def _check_product(self, product: str | None, ordered: list[SlotAmount], pooled: bool,
                       dispatch: str | None) -> None:
        if product is None:
            return
        from vpp.market.products import ProductError, catalogue, check_offer

        try:
            row = catalogue().get(product)
            check_offer(row, [(s.start, s.power_w / 1000.0) for s in ordered], self.clock(), pooled=pooled,
                        dispatch=dispatch)  # type: ignore[arg-type]
        except ProductError as e:
            raise Invalid(str(e), e.code) from None

    def _check_deliverable(self, ordered: list[SlotAmount], direction: str,
                           override: str | None) -> dict[str, Any] | None:
        """Refuse slots above the pessimistic deliverable power (module docstring); with an
        ``override`` return what the offer records instead."""
        start, end = ordered[0].start, ordered[-1].start + SLOT
        flex = {f.start: max(0.0, (f.up_w - f.band_up_w) if direction == "up" else (f.down_w - f.band_down_w))
                for f in self.flexibility(start, end)}
        committed = _sum_by_slot(
            [r for r in self.ledger.query(kinds=["award"]) if r.payload.get("direction") == direction], "accepted_w")
        over = []
        for s in ordered:
            can = max(0.0, flex.get(s.start, 0.0) - committed.get(s.start, 0.0))
            if s.power_w > can + 1e-6:
                over.append({"start": _iso(s.start), "offered_w": float(s.power_w), "deliverable_w": round(can, 1)})
        if not over:
            return None
        if override is None:
            o = over[0]
            raise Invalid(f"offer {o['offered_w'] / 1000:g} kW at {o['start']} is above the deliverable "
                          f"{o['deliverable_w'] / 1000:.3f} kW (pessimistic case, {direction}) "
                          f"in {len(over)} slot(s); send an override reason to offer it anyway", "not_deliverable")
        return {"reason": override, "slots": over}

    def _deliverable(self, ordered: list[SlotAmount], direction: str) -> dict[datetime, float]:
        """Flexibility per slot left after awards already accepted (all offers)."""
        start, end = ordered[0].start, ordered[-1].start + SLOT
        flex = {f.start: (f.up_w if direction == "up" else f.down_w) for f in self.flexibility(start, end)}
        committed = _sum_by_slot(
            [r for r in self.ledger.query(kinds=["award"]) if r.payload.get("direction") == direction],
            "accepted_w",
        )
        return {s.start: max(0.0, flex.get(s.start, 0.0) - committed.get(s.start, 0.0)) for s in ordered}


def _scoped(kind: str, actor: str, key: str) -> str:
    return f"{kind}:{actor}:{key}"


def _sum_by_slot(records: list[LedgerRecord], field: str) -> dict[datetime, float]:
    out: dict[datetime, float] = {}
    for r in records:
        for s in r.payload["slots"]:
            t = _parse(s["start"])
            out[t] = out.get(t, 0.0) + float(s[field])
    return out
