"""Who may call what: the route × role table, in one place.

Every operation of the app has exactly one row: ``(METHOD, path template)`` → the roles
allowed, or :data:`PUBLIC` (no key needed). The security middleware
(:mod:`vpp.api.guard`) enforces it before a body is read; the route dependencies
(:mod:`vpp.api.deps`) enforce it again from the same table. An operation missing from the
table is refused to everyone (``create_app`` also refuses to build such an app).

Field-level rules: offer prices are commercial information; roles outside
:data:`PRICE_READERS` (the same roles that may read ``/bids``) get them as ``null``
wherever they appear (``/offers/{id}``, ``/vpp/activity``).

Roles: ``operator`` runs the site; ``aggregator`` (external) sees site aggregates, awards
and dispatches; ``viewer`` reads the local dashboard (per-device, no commercial data).
"""
from __future__ import annotations

from vpp.api.auth import ROLES, Role

PUBLIC: frozenset[Role] = frozenset()  # marker: no key needed (compared by identity)

ALL = frozenset(ROLES)
OPERATOR = frozenset({"operator"})
PARTIES = frozenset({"operator", "aggregator"})  # commercial: bids, awards, dispatches
LOCAL = frozenset({"operator", "viewer"})  # per-device / per-household data

#: roles that see prices (offers, bids); must equal the ``/bids`` row
PRICE_READERS = PARTIES

P = "/api/v1"

TABLE: dict[tuple[str, str], frozenset] = {
    ("GET", f"{P}/health"): PUBLIC,
    ("GET", f"{P}/openapi.json"): PUBLIC,
    ("GET", f"{P}/me"): ALL,
    # market
    ("POST", f"{P}/offers"): OPERATOR,  # + aggregators when config.api.aggregator_offers
    ("GET", f"{P}/offers/{{offer_id}}"): ALL,
    ("POST", f"{P}/awards"): PARTIES,
    ("GET", f"{P}/awards/{{award_id}}"): ALL,
    ("GET", f"{P}/bids"): PARTIES,
    ("POST", f"{P}/bids/prices"): PARTIES,
    ("GET", f"{P}/ledger/export"): OPERATOR,
    ("GET", f"{P}/resources"): ALL,
    ("GET", f"{P}/flexibility"): ALL,
    ("POST", f"{P}/dispatches"): PARTIES,
    ("GET", f"{P}/dispatches/{{dispatch_id}}"): ALL,
    ("PATCH", f"{P}/dispatches/{{dispatch_id}}"): PARTIES,
    ("DELETE", f"{P}/dispatches/{{dispatch_id}}"): PARTIES,
    ("GET", f"{P}/dispatches/{{dispatch_id}}/performance"): ALL,
    ("GET", f"{P}/baseline"): ALL,
    ("GET", f"{P}/assessment"): PARTIES,  # Assessment II data per コマ (site aggregate)
    ("GET", f"{P}/assessment.csv"): PARTIES,
    ("GET", f"{P}/vpp/activity"): LOCAL,
    ("GET", f"{P}/costs"): LOCAL,
    ("GET", f"{P}/bill"): LOCAL,  # per home: household data, never to the aggregator
    ("GET", f"{P}/balancing/plan"): LOCAL,
    ("GET", f"{P}/balancing/plan.csv"): LOCAL,
    ("POST", f"{P}/balancing/plan/revise"): OPERATOR,
    ("PUT", f"{P}/balancing/plan"): OPERATOR,
    ("GET", f"{P}/balancing/imbalance"): LOCAL,
    # the running site
    ("GET", f"{P}/status"): ALL,
    ("GET", f"{P}/plan"): ALL,
    ("GET", f"{P}/stream"): ALL,
    ("GET", f"{P}/devices"): LOCAL,
    ("GET", f"{P}/alarms"): LOCAL,
    ("POST", f"{P}/alarms/{{alarm_id}}/ack"): OPERATOR,
    ("PUT", f"{P}/reserve"): OPERATOR,
    ("POST", f"{P}/override"): OPERATOR,
    # EV sessions: the operator sets needs and hands out driver links; a driver's link (a
    # per-session token in the path, no key) reads and sets that one session only
    ("GET", f"{P}/ev/sessions"): LOCAL,
    ("PUT", f"{P}/ev/sessions/{{charger_id}}/needs"): OPERATOR,
    ("POST", f"{P}/ev/sessions/{{charger_id}}/link"): OPERATOR,
    ("GET", f"{P}/ev/driver/{{token}}"): PUBLIC,
    ("PUT", f"{P}/ev/driver/{{token}}"): PUBLIC,
    # the dashboard's page and assets (its data comes from the API with the viewer's key)
    ("GET", "/"): PUBLIC,
    ("GET", "/static/plotly.min.js"): PUBLIC,
    ("GET", "/static/{name}"): PUBLIC,
}
assert TABLE[("GET", f"{P}/bids")] == PRICE_READERS


#: the API reference page (:mod:`vpp.api.docs`), a row only where it is served (``api.docs``)
DOCS = ("GET", f"{P}/docs")


def table(aggregator_offers: bool = False, docs: bool = False) -> dict[tuple[str, str], frozenset]:
    """The table for a site (``aggregator_offers``: ``config.api.aggregator_offers``;
    ``docs``: ``config.api.docs``)."""
    t = dict(TABLE)
    if aggregator_offers:
        t[("POST", f"{P}/offers")] = PARTIES
    if docs:
        t[DOCS] = PUBLIC
    return t


def allowed(rules: dict[tuple[str, str], frozenset], method: str, path: str) -> frozenset | None:
    """The roles allowed on ``method path`` (a route's path template); :data:`PUBLIC` (empty)
    when no key is needed; None when the operation is not in the table (refuse). HEAD
    follows GET."""
    r = rules.get((method, path))
    if r is None and method == "HEAD":
        r = rules.get(("GET", path))
    return r


def sees_prices(role: str) -> bool:
    return role in PRICE_READERS


def shown_actor(actor: str, caller_name: str, caller_role: str) -> str:
    """Who did something, as ``caller`` may see it: aggregators see their own name and
    ``"site"`` for anyone else (no people's names leave the site)."""
    if caller_role != "aggregator" or actor == caller_name:
        return actor
    return "site"
