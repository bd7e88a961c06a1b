"""A running site for the browser tests (:func:`tests.runtime.sites.start_site`: a Runtime on a
simulated site at 60×, a day of 1-s telemetry in its store, one key per role) and Chromium
from /usr/bin (never downloaded)."""
from __future__ import annotations

import os
from datetime import datetime

import pytest

from tests.runtime.sites import ROOT, start_site
from tests.testkit.tiers import tier

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SHOTS = ROOT / "artifacts" / "screenshots"
#: The site's load groups (the simulated site switches them): in an outage the hall heating
#: goes first (its threshold is far above any autonomy the battery has), the kitchen at 72 h.
DASH_LOADS = [{"id": "shelter", "critical": True, "nominal_w": 400},
              {"id": "kitchen", "priority": 2, "nominal_w": 1500, "shed_below_h": 72},
              {"id": "hall-heating", "priority": 3, "nominal_w": 4000, "shed_below_h": 1000}]


@pytest.fixture(scope="package")
@tier("runtime")
def site(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install the Debian chromium package (make sysdeps)")
    # scenario planning on: the plan view shows a real p10–p90 SoC band
    st = start_site(tmp_path_factory.mktemp("dash"), loads=DASH_LOADS, optimiser={"scenarios": 3})
    try:
        yield st
    finally:
        st.stop()


@pytest.fixture(scope="package")
@tier("browser")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def open_dashboard(browser, site, role: str, lang: str | None = None, viewport: tuple[int, int] = (1180, 820),
                   browser_time: datetime | None = None, timezone_id: str | None = None):
    """A fresh page logged in with ``role``'s key through the key dialog (``browser_time``:
    the page's ``Date`` is fixed there, e.g. to tell the browser's clock from the site's;
    ``timezone_id``: the browser's IANA zone, default the machine's)."""
    # bypass_csp: the tests' string predicates (wait_for_function, evaluate) run through eval,
    # which the page's content security policy forbids; test_dashboard_csp.py loads the page
    # under its policy
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale="ja-JP",
                              bypass_csp=True, **({"timezone_id": timezone_id} if timezone_id else {}))
    page = ctx.new_page()
    if browser_time is not None:
        page.clock.set_fixed_time(browser_time)
    if lang:
        page.add_init_script(f"localStorage.setItem('vpp_lang', '{lang}')")
    page.goto(site.url)
    page.fill("#in-key", site.keys[role])
    page.click("#login-form button.primary")
    page.wait_for_function("document.getElementById('v-soc').textContent.includes('%')", timeout=30_000)
    return page
