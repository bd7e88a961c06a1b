"""The 48 h plan view in Chromium: the p10–p90 SoC band over the plan's scenarios (the site
plans with ``optimiser.scenarios: 3``), the reserve floor, the storm target while storm mode is
on, and the server's one-line "why" for the current slot, in ja and en."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx

from .conftest import SHOTS, open_dashboard

NAMES = "document.getElementById('plan-chart').data.map(d => d.name)"


def _api(site, method: str, path: str, **kw) -> dict:
    r = httpx.request(method, site.url + "api/v1" + path, headers={"X-API-Key": site.keys["operator"]}, timeout=30, **kw)
    r.raise_for_status()
    return r.json()


def _trace(page, name: str) -> list:
    return page.evaluate(f"document.getElementById('plan-chart').data.find(d => d.name === {name!r}).y")


def test_plan_band_floor_storm_target_and_why_ja_en(site, browser):
    was = _api(site, "GET", "/status")["battery"]["storm"]
    deadline = (datetime.now(timezone.utc) + timedelta(hours=20)).isoformat()
    _api(site, "PUT", "/reserve", json={"storm": True, "storm_target_pct": 80, "storm_deadline": deadline,
                                         "reason": "plan band test"})
    try:
        plan = _api(site, "GET", "/plan")
        assert plan["scenarios"] == 3 and plan["storm_target_pct"] == 80.0
        assert plan["why"]["action"] in ("charging", "discharging", "holding")
        assert all(s["soc_p10_pct"] <= s["soc_p90_pct"] for s in plan["slots"])
        assert all(s["soc_p10_pct"] >= s["floor_pct"] - 0.1 for s in plan["slots"])  # floor in every scenario
        assert max(s["soc_p90_pct"] - s["soc_p10_pct"] for s in plan["slots"]) > 0.5  # a band, not a line

        page = open_dashboard(browser, site, "operator", lang="ja")
        page.click("nav button[data-tab=plan]")
        page.wait_for_selector("#plan-chart .main-svg", timeout=20_000)
        page.wait_for_function("document.getElementById('plan-why').textContent.length > 0", timeout=10_000)
        why = page.text_content("#plan-why")
        assert why.startswith("現在の計画: ") and why.split(": ", 1)[1].split(":")[0] in ("充電", "放電", "待機")
        assert "シナリオ 3 本" in why
        names = page.evaluate(NAMES)
        assert {"SoC 予測幅 (p10–p90)", "予備下限", "防災目標", "SoC 計画"} <= set(names)
        lo, hi = _trace(page, "SoC 予測幅 (p10–p90) p10"), _trace(page, "SoC 予測幅 (p10–p90)")
        assert max(h - lo_ for lo_, h in zip(lo, hi)) > 0.5
        assert set(_trace(page, "防災目標")) == {80.0}
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "plan-band-ja.png"), full_page=True)

        page.click("#lang")
        page.wait_for_function("document.getElementById('plan-why').textContent.startsWith('Plan now: ')",
                               timeout=10_000)
        why = page.text_content("#plan-why")
        assert why.split(": ", 1)[1].split(":")[0] in ("charging", "discharging", "holding")
        assert "3 scenarios" in why
        assert {"SoC band (p10–p90)", "Reserve floor", "Storm target", "SoC plan"} <= set(page.evaluate(NAMES))
        # the line is the server's sentence for the slot (the action word is the one it sent)
        action = page.evaluate("document.getElementById('plan-why').dataset.action")
        assert why.split(": ", 1)[1].startswith(action + ":") or why.split(": ", 1)[1].startswith(action + " ·")
        page.screenshot(path=str(SHOTS / "plan-band-en.png"), full_page=True)
        page.context.close()
    finally:
        if not was["active"]:
            _api(site, "PUT", "/reserve", json={"storm": False, "reason": "plan band test done"})
