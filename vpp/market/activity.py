"""What the operators' VPP view lists: offers, awards and dispatches of a window, site
aggregates only (kW at this edge, from W in the ledger).

A dispatch's *phase* is the one word the view shows: ``rejected`` / ``cancelled`` before
anything else, then ``executing`` inside its window (``suspended`` there while storm mode
holds it) and ``done`` after it, else its
acknowledgement (``accepted`` / ``partial``) while it waits to start.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from vpp.market.dispatch import Dispatch
from vpp.market.ledger import Ledger, LedgerRecord
from vpp.timefmt import iso

SLOT_H = 0.5
Phase = Literal["accepted", "partial", "rejected", "cancelled", "executing", "suspended", "done"]


def _parse(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _iso(t: datetime) -> str:
    return iso(t)  # type: ignore[return-value]


def window(rec: LedgerRecord) -> tuple[datetime, datetime]:
    """``[first slot start, last slot start + 30 min)`` of an offer or award record."""
    starts = sorted(_parse(s["start"]) for s in rec.payload["slots"])
    return starts[0], starts[-1] + timedelta(hours=SLOT_H)


def dispatch_phase(d: Dispatch, now: datetime) -> Phase:
    """See the module doc."""
    state = d.state(now)
    if state in ("rejected", "cancelled"):
        return state  # type: ignore[return-value]
    if state == "active":
        return "executing"
    if state == "suspended":
        return "suspended"
    if state == "completed":
        return "done"
    return d.status  # type: ignore[return-value]


def offer_row(rec: LedgerRecord) -> dict[str, Any]:
    a, e = window(rec)
    w = [float(s["power_w"]) for s in rec.payload["slots"]]
    return {"id": rec.id, "created_at": _iso(rec.ts), "actor": rec.actor, "direction": rec.payload["direction"],
            "price_per_kwh": rec.payload.get("price_per_kwh"), "start": _iso(a), "end": _iso(e),
            "max_kw": max(w) / 1000, "energy_kwh": sum(w) * SLOT_H / 1000}


def award_row(rec: LedgerRecord) -> dict[str, Any]:
    a, e = window(rec)
    slots = rec.payload["slots"]
    aw = [float(s["awarded_w"]) for s in slots]
    ac = [float(s["accepted_w"]) for s in slots]
    return {"id": rec.id, "offer_id": rec.payload["offer_id"], "created_at": _iso(rec.ts), "actor": rec.actor,
            "direction": rec.payload["direction"], "status": rec.payload["status"], "start": _iso(a), "end": _iso(e),
            "awarded_kw": max(aw) / 1000, "accepted_kw": max(ac) / 1000,
            "awarded_kwh": sum(aw) * SLOT_H / 1000, "accepted_kwh": sum(ac) * SLOT_H / 1000,
            "reasons": sorted({s["reason"] for s in slots if s.get("reason")})}


def recent(ledger: Ledger, dispatches: list[Dispatch], now: datetime, days: float,
           limit: int = 50) -> dict[str, list]:
    """Offers and awards whose window ends after ``now − days`` (newest first, at most
    ``limit`` each) and the dispatches in that range, as ``(dispatch, phase)``."""
    since = now - timedelta(days=days)
    offers = [r for r in ledger.query(kinds=["offer"]) if r.payload.get("slots") and window(r)[1] > since]
    awards = [r for r in ledger.query(kinds=["award"]) if r.payload.get("slots") and window(r)[1] > since]
    ds = [d for d in dispatches if d.request.end > since]
    ds.sort(key=lambda d: d.created_at, reverse=True)
    return {"offers": [offer_row(r) for r in reversed(offers)][:limit],
            "awards": [award_row(r) for r in reversed(awards)][:limit],
            "dispatches": [(d, dispatch_phase(d, now)) for d in ds][:limit]}
