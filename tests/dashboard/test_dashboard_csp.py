"""The dashboard and the API reference page under their own content security policy (no
bypass, unlike the other browser tests): they render, nothing is refused by the policy, and
every request stays on the site (no CDN)."""
from __future__ import annotations

import httpx

from vpp.api.headers import CSP

#: records policy violations from the first script of every document on
WATCH = ("document.addEventListener('securitypolicyviolation', e => "
         "(window.__csp = window.__csp || []).push(e.violatedDirective + ' ' + e.blockedURI))")


def _page(browser, site):
    ctx = browser.new_context(locale="ja-JP")
    page = ctx.new_page()
    page.add_init_script(WATCH)
    seen = {"requests": [], "console": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("console", lambda m: seen["console"].append(m.text) if "Content Security Policy" in m.text else None)
    return page, seen


def test_dashboard_works_under_its_policy(site, browser):
    page, seen = _page(browser, site)
    r = page.goto(site.url)
    assert r.headers["content-security-policy"] == CSP
    page.fill("#in-key", site.keys["operator"])
    page.click("#login-form button.primary")
    # function predicates: compiled by the browser's debugger protocol, not by eval
    page.wait_for_function("() => document.getElementById('v-soc').textContent.includes('%')", timeout=30_000)
    first = page.text_content("#clock")
    page.wait_for_function("(first) => document.getElementById('clock').textContent !== first", arg=first,
                           timeout=10_000)  # the event stream (connect-src 'self') moves the page
    page.wait_for_function("() => document.querySelector('.js-plotly-plot') !== null", timeout=30_000)
    assert page.evaluate("() => window.__csp || []") == [] and seen["console"] == []
    assert seen["requests"] and all(u.startswith(site.url) for u in seen["requests"]), seen["requests"]
    page.context.close()


def test_api_reference_page_is_self_hosted(site, browser):
    page, seen = _page(browser, site)
    r = page.goto(site.url + "api/v1/docs")
    assert r.status == 200 and r.headers["content-security-policy"] == CSP
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=30_000)
    doc = httpx.get(site.url + "api/v1/openapi.json", timeout=10).json()
    n_ops = sum(1 for item in doc["paths"].values() for _ in item)
    assert page.locator("section.op").count() == n_ops
    assert page.locator("section.schema").count() == len(doc["components"]["schemas"])
    offers = page.locator("section.op", has_text="/api/v1/offers").first.text_content()
    assert "roles: operator" in offers
    assert page.evaluate("() => window.__csp || []") == [] and seen["console"] == []
    assert all(u.startswith(site.url) for u in seen["requests"]), seen["requests"]
    page.context.close()
