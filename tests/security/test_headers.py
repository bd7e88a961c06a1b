"""Security headers (a content security policy among them) on every response: API answers,
refusals before auth, the dashboard page; the API reference page is self-hosted (no CDN), off
in the production config; the dashboard page has no inline script for the policy to refuse."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml

from tests.api.conftest import site_config
from vpp.api.app import SiteServices, create_app
from vpp.market.flexibility import BatteryFlexibility

from vpp.api.headers import HEADERS

ROOT = Path(__file__).resolve().parents[2]


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


async def test_api_docs_are_self_hosted_and_carry_the_policy(site):
    r = await site.client.get("/api/v1/docs")
    assert r.status_code == 200 and has_security_headers(r)
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    # every script and style is the site's own: no URL with a host, no inline script
    assert re.findall(r'(?:src|href)="([^"]+)"', r.text) == ["/static/apidocs.css", "/static/apidocs.js"]
    assert "<script>" not in r.text
    for asset in ("/static/apidocs.js", "/static/apidocs.css"):
        a = await site.client.get(asset)
        assert a.status_code == 200 and "http" not in a.text and "//cdn" not in a.text
    for gone in ("/redoc", "/api/v1/redoc", "/docs/oauth2-redirect"):
        assert (await site.client.get(gone)).status_code == 404, gone


async def test_api_docs_are_off_in_the_production_config(tmp_path, key_file):
    prod = yaml.safe_load((ROOT / "deploy/examples/community-centre-influx2.yaml").read_text())
    assert prod["api"]["docs"] is False  # the compose stack's config
    cfg = site_config(tmp_path, keys_path=key_file[0], api={"docs": False})
    app = create_app(cfg, SiteServices(BatteryFlexibility(cfg, {"bat1": 0.6}.__getitem__), lambda: datetime.now(UTC)))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/api/v1/docs")).status_code == 404
        assert (await c.get("/api/v1/openapi.json")).status_code == 200
        assert ("GET", "/api/v1/docs") not in app.state.access


def test_the_dashboard_page_needs_no_inline_script():
    html = (ROOT / "vpp/dashboard/static/index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>", html)
    assert scripts and all('src="/static/' in a for a in scripts), scripts
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline event handlers either
