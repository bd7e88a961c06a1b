"""Security headers on every response: API answers, refusals before auth, the dashboard page."""
from __future__ import annotations

from vpp.api.headers import HEADERS


def has_security_headers(r) -> bool:
    return all(r.headers.get(k) == v for k, v in HEADERS.items())


async def test_api_answers_and_refusals_carry_the_headers(site):
    assert has_security_headers(await site.client.get("/api/v1/health"))
    ok = await site.client.get("/api/v1/resources", headers=site.auth("aggregator"))
    assert ok.status_code == 200 and has_security_headers(ok)
    refused = await site.client.post("/api/v1/offers", content=b"{", headers={"Content-Type": "application/json"})
    assert refused.status_code == 401 and has_security_headers(refused)  # refused before auth: still there


async def test_dashboard_page_carries_the_headers(site):
    page = await site.client.get("/")
    assert page.status_code == 200 and has_security_headers(page)
