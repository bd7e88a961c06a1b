"""The town view in Chromium with 721 ECHONET homes served by emulated nodes: 5 % of the homes
offline, one stuck in a mode it fell back to; homes by status, aggregate SoC/reserve, filter
and drill-down to one home."""
from __future__ import annotations

import pytest

from simulators.town import generate_town
from tests.runtime.sites import SiteThread
from tests.testkit.tiers import tier
from tests.testkit.wait import wait_until_sync
from vpp.config import parse_config

from .conftest import SHOTS

HOMES = 721
OFFLINE = [f"h{i:03d}" for i in range(1, HOMES + 1, 20)]  # 37 homes: 5 %
STUCK = "h002"


@pytest.fixture(scope="module")
@tier("runtime")
def town_site(tmp_path_factory):
    from vpp.api.auth import create_key
    from vpp.commands.demo import simulated_runtime

    data = generate_town(HOMES, 5, protocol="echonet_lite", v2h_share=0.1)
    # the view is under test, not the planner: a short horizon keeps its solves (threads that
    # a stop has to wait for) short
    data["optimiser"].update(horizon_h=4, time_limit_s=3)
    cfg = parse_config(data, "<town view test>")
    rt = simulated_runtime(cfg, speed=60.0, data_dir=tmp_path_factory.mktemp("town"), weather="clear-sky")
    rt.site.echonet_faults = {f"{h}-{k}": "offline" for h in OFFLINE for k in ("bat", "pv", "meter")}
    keys = {"operator": create_key(rt.config.api.keys_path, "operator", "test-town")[0]}
    st = SiteThread(rt)
    st.start()
    st.keys, st.url = keys, rt.url
    try:
        # our driver commands the stuck home's battery (verified), then it falls back to auto and stays
        bat = f"{STUCK}-bat"
        wait_until_sync(lambda: rt.fleet.latest(bat) is not None, 60, what="first reading")

        async def command_then_lock():
            await rt.fleet.device(bat).set_power(0.0)
            rt.site.echonet.objects[bat].lock_mode("auto")
        st.call(command_then_lock())
        wait_until_sync(lambda: any(a.key == f"device:{bat}:mode_reverted" for a in rt.controller.alarms.active()),
                        60, what="mode_reverted alarm")
        yield st
    finally:
        st.stop()


def test_town_view_shows_721_homes_by_status_and_drills_down(town_site, browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP", bypass_csp=True)  # eval predicates
    page = ctx.new_page()
    page.add_init_script("localStorage.setItem('vpp_lang', 'en')")
    page.goto(town_site.url)
    page.fill("#in-key", town_site.keys["operator"])
    page.click("#login-form button.primary")
    page.click("nav button[data-tab=town]")
    page.wait_for_function("document.querySelectorAll('#town-body tr').length === 722", timeout=60_000)
    assert page.text_content("#town-total .val") == "722"  # and the community centre
    offline_rows = "[...document.querySelectorAll('#town-body tr.town-offline')].map(r => r.dataset.home).sort()"
    wait_until_sync(lambda: page.evaluate(offline_rows) == sorted(OFFLINE), 60, interval_s=1.0,
                    what=f"the offline homes (shown: {page.evaluate(offline_rows)})")
    assert page.text_content("#town-n-offline .val") == str(len(OFFLINE))
    assert int(page.text_content("#town-n-reverted .val")) >= 1
    assert "%" in page.text_content("#town-soc .val") and "%" in page.text_content("#town-floor .val")
    # filter: only the offline homes
    page.select_option("#town-filter", "offline")
    rows = page.eval_on_selector_all("#town-body tr", "rs => rs.map(r => r.dataset.home)")
    assert sorted(rows) == sorted(OFFLINE)
    # drill-down to the stuck home: its devices and the alarm
    page.select_option("#town-filter", "all")
    page.fill("#town-search", STUCK)
    page.click(f"#town-body tr[data-home={STUCK}]")
    assert page.is_visible("#town-detail")
    devs = page.eval_on_selector_all("#town-detail-body tr", "rs => rs.map(r => r.dataset.device)")
    assert f"{STUCK}-bat" in devs and f"{STUCK}-meter" in devs
    assert "auto" in page.text_content("#town-detail-alarms")
    assert "reverted" in page.text_content("#town-detail-title")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "town-view.png"), full_page=False)
    # Japanese strings
    page.click("#lang")
    page.wait_for_function("document.querySelector('#town-n-offline .lbl').textContent === '通信断'")
    ctx.close()
