"""Input limits: bodies bounded before parsing (413, also chunked), a concurrency limit,
dates within 2000–2100 (422, never 500), windows capped, ``/bids`` cached and coalesced."""
from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest

from vpp.api.guard import SecurityMiddleware
from vpp.market import bid_inputs

MAX = 1 << 20
OFFER = {"slots": [{"start": "2026-11-25T05:00:00Z", "capacity_kw": 5}]}


async def test_declared_oversized_body_is_413_before_anything(site):
    big = b"x" * (MAX + 1)
    for headers in ({}, site.auth("operator"), site.auth("viewer")):
        r = await site.client.post("/api/v1/offers", content=big, headers={**headers, "Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["code"] == "too_large"
    assert site.records() == []


async def test_streamed_oversized_body_is_counted(site):
    async def chunks():
        for _ in range(20):
            yield b"x" * 65536  # 1.25 MiB in total, no Content-Length

    r = await site.client.post("/api/v1/offers", content=chunks(),
                               headers={**site.auth("operator"), "Content-Type": "application/json"})
    assert r.status_code == 413
    assert site.records() == []


async def test_body_within_the_limit_goes_through(site):
    r = await site.client.post("/api/v1/offers", content=json.dumps(OFFER).encode(),
                               headers={**site.auth("operator"), "Content-Type": "application/json"})
    assert r.status_code == 201


@pytest.mark.parametrize("body", [b'{"slots": [', b"\x00\x01", json.dumps({"slots": [{"start": "nan"}]}).encode(),
                                  b'{"slots": "' + b"a" * 500_000 + b'"}'])
async def test_malformed_bodies_meet_auth_first(site, body):
    h = {"Content-Type": "application/json"}
    assert (await site.client.post("/api/v1/offers", content=body, headers=h)).status_code == 401
    assert (await site.client.post("/api/v1/offers", content=body, headers={**h, **site.auth("viewer")})).status_code == 403
    assert (await site.client.post("/api/v1/offers", content=body, headers={**h, **site.auth("operator")})).status_code == 422


EXTREME = ["0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00-01:00", "9999-12-31T23:30:00-01:00",
           "1999-12-31T23:30:00Z", "2101-01-01T00:00:00Z"]


@pytest.mark.parametrize("t", EXTREME)
async def test_extreme_dates_are_422_not_500(open_site, t):
    async with open_site(raise_app_exceptions=False) as site:
        op = site.auth("operator")
        later = "2026-11-26T00:00:00Z"
        calls = [
            ("POST", "/api/v1/offers", {"json": {"slots": [{"start": t, "capacity_kw": 1}]}}),
            ("GET", "/api/v1/flexibility", {"params": {"start": t, "end": later}}),
            ("GET", "/api/v1/flexibility", {"params": {"start": "2026-11-25T00:00:00Z", "end": t}}),
            ("GET", "/api/v1/ledger/export", {"params": {"start": t, "end": later}}),
            ("GET", "/api/v1/baseline", {"params": {"start": t, "end": later}}),
            ("POST", "/api/v1/dispatches", {"json": {"award_id": "x", "type": "delta", "start": t, "end": later,
                                                     "value_kw": 1}}),
        ]
        for method, url, kw in calls:
            r = await site.client.request(method, url, headers=op, **kw)
            assert r.status_code == 422, (method, url, r.status_code, r.text)
        day = t[:10]
        r = await site.client.get("/api/v1/bids", params={"day": day}, headers=op)
        assert r.status_code == 422, r.text


async def test_export_window_is_capped(site):
    r = await site.client.get("/api/v1/ledger/export", params={"start": "2020-01-01T00:00:00Z",
                                                               "end": "2026-01-01T00:00:00Z"},
                              headers=site.auth("operator"))
    assert r.status_code == 422 and "400 days" in r.text
    r = await site.client.get("/api/v1/flexibility", params={"start": "2026-11-25T00:00:00Z",
                                                             "end": "2026-12-25T00:00:00Z"},
                              headers=site.auth("operator"))
    assert r.status_code == 422 and "7 days" in r.text


async def test_concurrency_limit_answers_503():
    gate = asyncio.Event()
    entered = 0

    async def slow_app(scope, receive, send):
        nonlocal entered
        entered += 1
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    class FakeApp:  # one public route
        routes: list = []

    from starlette.routing import Route

    FakeApp.routes = [Route("/api/v1/health", lambda r: None, methods=["GET"])]
    mw = SecurityMiddleware(slow_app, app_ref=FakeApp, rules={("GET", "/api/v1/health"): frozenset()},
                            max_body=MAX, max_concurrent=2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://t") as c:
        first = [asyncio.create_task(c.get("/api/v1/health")) for _ in range(2)]
        while entered < 2:
            await asyncio.sleep(0.01)
        r = await c.get("/api/v1/health")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        gate.set()
        assert [(await t).status_code for t in first] == [200, 200]
        assert (await c.get("/api/v1/health")).status_code == 200
        assert mw.in_flight == 0


PRICES = {"capacity_price_per_kw": 2.0, "energy_price_per_kwh": 20.0}


async def test_bids_cached_and_concurrent_requests_coalesced(open_site, monkeypatch):
    calls = 0
    release = threading.Event()
    real = bid_inputs.plan_bids

    def counted(*a, **kw):
        nonlocal calls
        calls += 1
        release.wait(10)
        return real(*a, **kw)

    monkeypatch.setattr(bid_inputs, "plan_bids", counted)
    async with open_site(vpp=PRICES) as s:
        h = s.auth("aggregator")
        tasks = [asyncio.create_task(s.client.get("/api/v1/bids", params={"day": "2026-11-26"}, headers=h))
                 for _ in range(5)]
        await asyncio.sleep(0.3)
        release.set()
        rs = [await t for t in tasks]
        assert {r.status_code for r in rs} == {200} and len({r.text for r in rs}) == 1
        assert calls == 1
        again = await s.client.get("/api/v1/bids", params={"day": "2026-11-26"}, headers=s.auth("operator"))
        assert again.text == rs[0].text and calls == 1  # same inputs: from the cache
        # new inputs (prices posted for the day) → a new bid
        slots = [{"start": "2026-11-25T23:00:00Z", "capacity_up": 5.0, "energy_up": 20.0}]
        r = await s.client.post("/api/v1/bids/prices", json={"day": "2026-11-26", "slots": slots},
                                headers=s.auth("aggregator", "p1"))
        assert r.status_code == 201, r.text
        assert (await s.client.get("/api/v1/bids", params={"day": "2026-11-26"}, headers=h)).status_code == 200
        assert calls == 2
        s.soc["bat1"] = 0.9  # the battery moved: another bid
        assert (await s.client.get("/api/v1/bids", params={"day": "2026-11-26"}, headers=h)).status_code == 200
        assert calls == 3


async def test_bid_errors_are_shared_not_cached():
    cache = bid_inputs.BidCache(size=2)
    n = 0

    def boom():
        nonlocal n
        n += 1
        raise ValueError("no")

    for _ in range(2):
        with pytest.raises(ValueError):
            await cache.get(("k",), boom)
    assert n == 2
    for i in range(4):
        assert await cache.get((i,), lambda i=i: i) == i
    assert len(cache._done) == 2
