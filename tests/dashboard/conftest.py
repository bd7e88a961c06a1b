"""A running site for the browser tests: Runtime + SimulatedSite (60×) on free loopback ports,
its embedded store pre-filled with a day of 1-s telemetry, operator and viewer keys, and
Chromium from /usr/bin (never downloaded)."""
from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.testkit.tiers import tier
from vpp.api.auth import create_key
from vpp.config import read_config
from vpp.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SHOTS = ROOT / "artifacts" / "screenshots"


def prefill_day(runtime: Runtime, end: datetime) -> int:
    """Write 24 h of 1-s readings of every device into the runtime's embedded store [rows]."""
    from vpp.storage.embedded import EmbeddedStore

    cfg = runtime.config
    store = EmbeddedStore(cfg.storage, site=cfg.site.name)
    store.open()
    t0 = int((end - timedelta(days=1)).timestamp())
    n = 0
    try:
        for d in cfg.devices:
            rows = []
            for k in range(86_400):
                ts = t0 + k
                p = 5000.0 + 1000.0 * ((ts // 60) % 7)
                vals = {"power_w": p, "soc": 0.5} if d.kind == "battery" else {"power_w": p}
                rows.append((cfg.site.name, d.id, d.kind, ts * 1_000_000_000, "good", "", json.dumps(vals)))
            store.write_prepared(rows)
            n += len(rows)
    finally:
        store.close()
    return n


class SiteThread:
    """The runtime on its own event loop in a thread (Playwright's sync API owns the test's)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def call(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.call(self.rt.start(), 60)

    def stop(self) -> None:
        try:
            self.call(self.rt.stop(), 60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)

    def inject(self, device: str, fault: str | None) -> None:
        async def go():
            await self.rt.site.inject(device, fault)
        self.call(go())


@pytest.fixture(scope="package")
@tier("runtime")
def site(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install the Debian chromium package (make sysdeps)")
    tmp = tmp_path_factory.mktemp("dash")
    cfg = read_config(ROOT / "deploy/examples/community-centre.yaml")
    # The simulated day starts 6 h behind the wall clock (and catches up at 60× after ~6 min):
    # the page must take times such as override expiries from the site's clock, not the browser's.
    start = datetime.now(timezone.utc) - timedelta(hours=6)
    rt = Runtime(cfg, simulate=True, speed=60.0, sim_start=start, data_dir=tmp, weather="clear-sky")
    t0 = time.perf_counter()
    rows = prefill_day(rt, start)
    print(f"\nprefilled {rows} rows (1-s, 24 h, {len(cfg.devices)} devices) in {time.perf_counter() - t0:.1f} s")
    keys = {role: create_key(rt.config.api.keys_path, role, f"test-{role}")[0]
            for role in ("operator", "viewer", "aggregator")}
    st = SiteThread(rt)
    st.start()
    st.keys = keys
    st.url = rt.url
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
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale="ja-JP",
                              **({"timezone_id": timezone_id} if timezone_id else {}))
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
