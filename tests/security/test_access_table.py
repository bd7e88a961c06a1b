"""Every OpenAPI operation × every role and no key against the access table
(:mod:`vpp.api.access`), with bodies that would not validate: authentication and
authorisation answer before the body is looked at, and a refused call writes nothing."""
from __future__ import annotations

import re

import pytest

from vpp.api import access
from tests.api.conftest import site_config
from vpp.api.guard import operations

ROLES = ("operator", "aggregator", "viewer")
BAD_BODIES = [b'{"garbage": ', b'{"slots": "bad", "extra": 1}', b"\xff\xfe not json"]


def _ops(doc: dict) -> list[tuple[str, str]]:
    return [(m.upper(), p) for p, item in doc["paths"].items() for m in item
            if m in ("get", "post", "put", "patch", "delete")]


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


async def test_every_route_has_exactly_one_row(site):
    rules = site.app.state.access
    ops = {(m, p) for p, methods, _ in operations(site.app) for m in methods if m != "HEAD"}
    assert ops == set(rules), "routes and the access table disagree"
    doc = (await site.client.get("/api/v1/openapi.json")).json()
    assert set(_ops(doc)) <= set(rules)


async def test_every_operation_every_role_and_no_key(site):
    doc = (await site.client.get("/api/v1/openapi.json")).json()
    rules = site.app.state.access
    checked = 0
    for method, path in _ops(doc):
        roles = access.allowed(rules, method, path)
        assert roles is not None, (method, path)
        url = _url(path)
        for who in (None, *ROLES):
            for body in BAD_BODIES:
                headers = {"Content-Type": "application/json"}
                if who is not None:
                    headers["Authorization"] = f"Bearer {site.keys[who]}"
                if path.endswith("/stream") and who is not None and who in roles:
                    continue  # an allowed stream would stay open (503 here anyway: no running site)
                r = await site.client.request(method, url, content=body, headers=headers)
                if not roles:  # public
                    assert r.status_code not in (401, 403), (method, path, who, r.text)
                elif who is None:
                    assert r.status_code == 401, (method, path, r.status_code, r.text)
                    assert r.headers["www-authenticate"] == "Bearer"
                elif who not in roles:
                    assert r.status_code == 403, (method, path, who, r.status_code, r.text)
                    assert "needs" in r.json()["detail"]
                else:
                    assert r.status_code not in (401, 403), (method, path, who, r.status_code, r.text)
                checked += 1
    assert checked > 100
    assert site.records() == []  # bad bodies: nothing written by anyone


def test_offers_are_operator_only_unless_configured():
    assert access.table()[("POST", "/api/v1/offers")] == {"operator"}
    assert access.table(aggregator_offers=True)[("POST", "/api/v1/offers")] == {"operator", "aggregator"}


async def test_aggregator_offers_when_configured(open_site, key_file, tmp_path):
    import httpx

    from tests.api.conftest import T0, Clock
    from vpp.api.app import SiteServices, create_app
    from vpp.config import updated
    from vpp.market.flexibility import BatteryFlexibility

    body = {"slots": [{"start": "2026-11-25T05:00:00Z", "capacity_kw": 5}]}
    path, keys = key_file
    cfg = updated(site_config(tmp_path), api={"keys_path": str(path), "aggregator_offers": True})
    app = create_app(cfg, SiteServices(BatteryFlexibility(cfg, lambda b: 0.6), Clock(T0)))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/api/v1/offers", json=body, headers={"X-API-Key": keys["aggregator"], "Idempotency-Key": "o"})
        assert r.status_code == 201, r.text
    async with open_site() as s:
        r = await s.client.post("/api/v1/offers", json=body, headers=s.auth("aggregator"))
        assert r.status_code == 403


def test_price_readers_are_the_bids_readers():
    assert access.PRICE_READERS == access.TABLE[("GET", "/api/v1/bids")]
    # whoever may not read bids sees no prices anywhere they may look
    for role in ROLES:
        assert access.sees_prices(role) == (role in access.TABLE[("GET", "/api/v1/bids")])


async def test_viewers_see_no_offer_prices(site):
    body = {"slots": [{"start": "2026-11-25T05:00:00Z", "capacity_kw": 5}], "price_per_kwh": 42.5}
    r = await site.client.post("/api/v1/offers", json=body, headers=site.auth("operator"))
    assert r.status_code == 201, r.text
    oid = r.json()["id"]
    assert (await site.client.get("/api/v1/bids", params={"day": "2026-11-25"},
                                  headers=site.auth("viewer"))).status_code == 403
    v = await site.client.get(f"/api/v1/offers/{oid}", headers=site.auth("viewer"))
    assert v.status_code == 200 and v.json()["price_per_kwh"] is None
    act = await site.client.get("/api/v1/vpp/activity", headers=site.auth("viewer"))
    assert act.status_code == 200 and act.json()["offers"] and "42.5" not in act.text
    assert all(o["price_per_kwh"] is None for o in act.json()["offers"])
    op = await site.client.get("/api/v1/vpp/activity", headers=site.auth("operator"))
    assert [o["price_per_kwh"] for o in op.json()["offers"]] == [42.5]
    agg = await site.client.get(f"/api/v1/offers/{oid}", headers=site.auth("aggregator"))
    assert agg.json()["price_per_kwh"] == 42.5
    assert agg.json()["actor"] == "site"  # no operator's name to the aggregator


@pytest.mark.parametrize("role", ROLES)
async def test_unauthorised_post_writes_nothing(site, role):
    rules = site.app.state.access
    for (method, path), roles in rules.items():
        if method == "GET" or not roles or role in roles:
            continue
        r = await site.client.request(method, _url(path), json={"slots": []}, headers=site.auth(role))
        assert r.status_code == 403
    assert site.records() == []


async def test_openapi_states_the_table(site):
    doc = (await site.client.get("/api/v1/openapi.json")).json()
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    for method, path in _ops(doc):
        op = doc["paths"][path][method.lower()]
        roles = access.allowed(site.app.state.access, method, path)
        assert op.get("x-roles", []) == sorted(roles), (method, path)
        assert ("security" in op) == bool(roles)
