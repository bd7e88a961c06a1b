"""The VPP and cost views in Chromium: an award and a dispatch placed through the API show up
with their status and per-slot performance; the cost view shows numbers with units in ja and
en; labels do not overlap; a 1024×768 tablet can use both. Screenshots in artifacts/."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from .conftest import SHOTS, open_dashboard

from tests.testkit.wait import wait_until_sync

SLOT = timedelta(minutes=30)

OVERLAPS_JS = """(sel) => {
  const els = [...document.querySelectorAll(sel)].filter((e) => e.offsetParent !== null && e.textContent.trim());
  const boxes = els.map((e) => [e, e.getBoundingClientRect()]);
  const bad = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const [ea, a] = boxes[i], [eb, b] = boxes[j];
    if (ea.contains(eb) || eb.contains(ea)) continue;
    const w = Math.min(a.right, b.right) - Math.max(a.left, b.left), h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    if (w > 1 && h > 1) bad.push(ea.textContent.trim() + " ⟷ " + eb.textContent.trim());
  }
  // text wider than its box is cut off or runs into its neighbour
  for (const [e] of boxes) if (e.scrollWidth > e.clientWidth + 1) bad.push("overflows: " + e.textContent.trim());
  return bad;
}"""


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def placed(site) -> tuple[dict, dict]:
    """Offer, award and dispatch (charge: the other tests may leave a high reserve floor)
    through the API from the next slot of the site's clock (at 60× it starts within 30 s,
    while the other tests run)."""
    now = site.rt.now()
    a = now - timedelta(seconds=now.timestamp() % SLOT.total_seconds()) + SLOT
    if a - now < timedelta(minutes=3):
        a += SLOT
    slots = [a, a + SLOT]
    with httpx.Client(base_url=site.url + "api/v1", timeout=30) as c:
        h = {"X-API-Key": site.keys["aggregator"]}
        op = {"X-API-Key": site.keys["operator"]}  # the site offers (operators only), the aggregator awards
        r = c.post("/offers", headers={**op, "Idempotency-Key": "dash-o1"},
                   json={"direction": "down", "price_per_kwh": 25.0, "override": "award-side rules under test",
                         "slots": [{"start": iso(t), "capacity_kw": 10.0} for t in slots]})
        assert r.status_code == 201, r.text
        r = c.post("/awards", headers={**h, "Idempotency-Key": "dash-a1"},
                   json={"offer_id": r.json()["id"], "slots": [{"start": iso(t), "capacity_kw": 8.0} for t in slots]})
        assert r.status_code == 201, r.text
        award = r.json()
        r = c.post("/dispatches", headers={**h, "Idempotency-Key": "dash-d1"},
                   json={"award_id": award["id"], "type": "delta", "start": iso(a), "end": iso(a + 2 * SLOT),
                         "value_kw": 5.0})
        assert r.status_code == 201, r.text
        return award, r.json()


def assert_no_overlaps(page, sel: str) -> None:
    bad = page.evaluate(OVERLAPS_JS, sel)
    assert not bad, bad


def test_vpp_view_shows_award_and_dispatch(site, browser, placed):
    award, disp = placed
    page = open_dashboard(browser, site, "viewer")
    page.click("nav button[data-tab=vpp]")
    row = f'tr[data-dispatch="{disp["id"]}"]'
    page.wait_for_selector(row, timeout=20_000)
    page.wait_for_selector(f'tr[data-award="{award["id"]}"]')
    phase = page.text_content(f"{row} .pill")
    assert phase in ("受諾 · 開始待ち", "一部受諾 · 開始待ち", "拒否", "実行中", "完了", "取消"), phase
    assert "kW" in page.text_content(row)
    award_row = page.text_content(f'tr[data-award="{award["id"]}"]')
    assert "kWh" in award_row and "kW" in award_row
    page.wait_for_selector("#perf-card:not([hidden])")  # the newest dispatch is selected
    assert_no_overlaps(page, "#view-vpp th, #view-vpp h2, #vpp-meta, #perf-meta")
    shot(page, "vpp-ja")
    page.click("#lang")
    page.wait_for_function(f"document.querySelector('{row} .pill').textContent.match(/^[a-z ·]+$/)")
    assert page.text_content(f"{row} .pill") in ("accepted · waiting", "partial · waiting", "rejected", "executing",
                                                  "done", "cancelled")
    assert page.text_content("#view-vpp h2") == "Dispatches"
    shot(page, "vpp-en")
    page.context.close()


NUMBER = r"-?[\d,]+(\.\d+)?"


def test_cost_view_numbers_with_units_ja_en(site, browser):
    page = open_dashboard(browser, site, "operator")
    page.click("nav button[data-tab=costs]")
    page.wait_for_function("document.getElementById('cv-cost').textContent.includes('円')", timeout=20_000)
    for sel, u in (("#cv-bought", "kWh"), ("#cv-sold", "kWh"), ("#cv-cost", "円"), ("#cv-savings", "円"),
                   ("#cv-co2", "kg-CO2"), ("#cv-vpp", "円")):
        assert re.fullmatch(NUMBER + " " + re.escape(u), page.text_content(sel)), (sel, page.text_content(sel))
    assert "円" in page.text_content("#cv-cost-nb") and "kWh" in page.text_content("#cv-battery")
    assert len(page.query_selector_all("#cost-body tr")) == 4
    # what the page shows is what the API says
    api = httpx.get(site.url + "api/v1/costs", headers={"X-API-Key": site.keys["viewer"]}, timeout=30).json()
    assert api["slots"] > 0 and api["metered_slots"] > 0
    assert_no_overlaps(page, "#view-costs .lbl, #view-costs .val, #view-costs .muted, #view-costs th, #view-costs td")
    shot(page, "costs-ja")
    page.click("#lang")
    page.wait_for_function("document.getElementById('cv-cost').textContent.includes('JPY')")
    assert page.text_content("#c-co2 .lbl") == "CO2 avoided"
    page.click(".period-btn[data-period=month]")
    page.wait_for_function("document.getElementById('cost-meta').textContent.includes('slots')")
    for sel, u in (("#cv-bought", "kWh"), ("#cv-cost", "JPY"), ("#cv-co2", "kg-CO2"), ("#cv-vpp", "JPY")):
        assert re.fullmatch(NUMBER + " " + re.escape(u), page.text_content(sel)), (sel, page.text_content(sel))
    assert_no_overlaps(page, "#view-costs .lbl, #view-costs .val, #view-costs .muted, #view-costs th, #view-costs td")
    shot(page, "costs-en")
    page.context.close()


def test_tablet_viewport_uses_vpp_and_cost_views(site, browser):
    page = open_dashboard(browser, site, "viewer", viewport=(1024, 768))
    for tab in ("overview", "vpp", "costs", "devices"):
        page.click(f"nav button[data-tab={tab}]")
        assert page.is_visible(f"#view-{tab}")
        # nothing wider than the screen: no sideways scrolling of the page
        assert page.evaluate("document.documentElement.scrollWidth") <= 1024, tab
    page.click("nav button[data-tab=costs]")
    page.wait_for_function("document.getElementById('cv-cost').textContent.includes('円')", timeout=20_000)
    assert page.is_visible("#c-vpp") and page.evaluate("document.getElementById('c-vpp').getBoundingClientRect().right") <= 1024
    tabs = page.evaluate("[...document.querySelectorAll('nav button')].map((b) => b.getBoundingClientRect().bottom)")
    assert max(tabs) < 200  # the tab bar fits in one or two rows at the top
    assert_no_overlaps(page, "nav button, #view-costs .lbl, #view-costs .val, #view-costs .muted")
    shot(page, "costs-tablet-ja")
    page.click("nav button[data-tab=vpp]")
    page.wait_for_selector("#dispatch-body tr")
    assert_no_overlaps(page, "nav button, #view-vpp th")
    shot(page, "vpp-tablet-ja")
    page.context.close()


def test_vpp_per_slot_performance_once_the_dispatch_runs(site, browser, placed):
    award, disp = placed
    assert disp["status"] in ("accepted", "partial"), disp
    t0, w0 = site.rt.now(), time.monotonic()
    time.sleep(0.5)
    rate = (site.rt.now() - t0).total_seconds() / (time.monotonic() - w0)  # runtime s per wall s
    wait_s = (datetime.fromisoformat(disp["start"].replace("Z", "+00:00")) - site.rt.now()).total_seconds() / rate
    # the runtime runs on the simulated clock (60×): a slow clock is a bug, not a reason to skip
    assert wait_s <= 60, f"the runtime clock runs at {rate:.1f}×: the dispatch starts in {wait_s:.0f} s"
    h = {"X-API-Key": site.keys["viewer"]}

    def dispatch_running() -> bool:
        rows = httpx.get(site.url + "api/v1/vpp/activity", headers=h, timeout=10).json()["dispatches"]
        return next(d["phase"] for d in rows if d["id"] == disp["id"]) in ("executing", "done")
    wait_until_sync(dispatch_running, wait_s + 20, interval_s=0.5, what="the dispatch executing")
    page = open_dashboard(browser, site, "operator", lang="en")
    page.click("nav button[data-tab=vpp]")
    row = f'tr[data-dispatch="{disp["id"]}"]'
    page.wait_for_selector(row, timeout=20_000)
    page.click(row)
    # one row per 30-min slot: baseline and instructed power; metered values once a slot is over
    page.wait_for_function("document.querySelectorAll('#perf-body tr').length === 2", timeout=20_000)
    first = page.query_selector_all("#perf-body tr")[0].inner_text()
    assert first.count("kW") >= 2, first
    assert "Per-slot performance" in page.text_content("#perf-title")
    assert page.text_content(f"{row} .pill") in ("executing", "done")
    shot(page, "vpp-performance-en")
    page.context.close()
