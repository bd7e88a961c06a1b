"""``GET /api/v1/bids``: the day-ahead offer per 30-min slot over the API (real app, httpx
ASGI transport, the same :func:`vpp.market.bids.plan_bids` the CLI uses). The test clock is
2026-11-25 09:00 JST, so 2026-11-26 is the next bid day (deadline 25 Nov 14:00 JST)."""
from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from vpp.market.prices import day_slots


PRICES = {"capacity_price_per_kw": 2.0, "energy_price_per_kwh": 20.0}


@pytest.fixture
async def priced(open_site):
    async with open_site(vpp=PRICES) as s:
        yield s


async def test_aggregator_reads_the_next_days_bid(priced):
    r = await priced.client.get("/api/v1/bids", params={"day": "2026-11-26"}, headers=priced.auth("aggregator"))
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["day"] == "2026-11-26" and d["timezone"] == "Asia/Tokyo"
    assert d["deadline"] == "2026-11-25T05:00:00+00:00" and d["deadline_passed"] is False
    slots = d["slots"]
    assert len(slots) == 48 and slots[0]["start"] == "2026-11-25T15:00:00+00:00" and slots[-1]["end"] == "2026-11-26T15:00:00+00:00"
    assert all(0 <= s["up_kw"] <= 50 and 0 <= s["down_kw"] <= 50 for s in slots)
    assert sum(s["up_kw"] + s["down_kw"] for s in slots) > 0
    assert d["expected_revenue"] == pytest.approx(sum(s["expected_revenue"] for s in slots), abs=0.1)
    assert 0 < d["revenue_at_risk"] < d["expected_revenue"]
    assert d["removed"] == [] and d["storm"] is None
    assert "bat1" not in r.text  # site-level aggregates only


async def test_roles(priced):
    ok = await priced.client.get("/api/v1/bids", params={"day": "2026-11-26"}, headers=priced.auth("operator"))
    assert ok.status_code == 200
    r = await priced.client.get("/api/v1/bids", params={"day": "2026-11-26"}, headers=priced.auth("viewer"))
    assert r.status_code == 403 and "viewer" in r.json()["detail"]
    assert (await priced.client.get("/api/v1/bids", params={"day": "2026-11-26"})).status_code == 401


async def test_today_is_late_and_started_slots_are_removed(priced):
    r = await priced.client.get("/api/v1/bids", params={"day": "2026-11-25"}, headers=priced.auth("aggregator"))
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["deadline_passed"] is True
    assert [x["start"] for x in d["removed"]] == [s["start"] for s in d["slots"][:18]]  # 00:00–08:30 JST (now 09:00)
    assert all(x["reason"] == "slot already started" for x in d["removed"])


@pytest.mark.parametrize("day, why", [
    ("2026-13-01", "date"), ("tomorrow", "date"), ("2026-11-24", "in the past"), ("2026-11-28", "too far ahead")])
async def test_bad_day_is_422_with_reason(priced, day, why):
    r = await priced.client.get("/api/v1/bids", params={"day": day}, headers=priced.auth("aggregator"))
    assert r.status_code == 422
    assert why in str(r.json()["detail"])


async def test_prices_for_the_wrong_day_are_422(priced):
    other = day_slots(date(2026, 11, 27))[:2]
    priced.app.state.services.bid_prices = lambda day: pd.DataFrame(
        {"capacity_up": 2.0, "capacity_down": 1.0, "energy_up": 0.0, "energy_down": 0.0, "spot": float("nan")},
        index=other)
    r = await priced.client.get("/api/v1/bids", params={"day": "2026-11-26"}, headers=priced.auth("aggregator"))
    assert r.status_code == 422 and "wrong day" in r.json()["detail"]


async def test_storm_mode_of_the_running_controller_removes_its_slots(tmp_path, key_file):
    """With a controller (no devices online: SoC assumed), its storm mode reaches the bid:
    storm due 26 Nov 18:00 JST with the 12 h lead → slots from 06:00 on are removed."""
    from datetime import datetime, timedelta, timezone

    import httpx

    from tests.api.conftest import T0, site_config
    from vpp.api.app import SiteServices, create_app
    from vpp.control.loop import Controller

    path, keys = key_file
    cfg = site_config(tmp_path, keys_path=path, vpp={"capacity_price_per_kw": 2.0})

    class Clock:
        def now(self):
            return T0

    ctl = Controller(cfg, clock=Clock())
    ctl.storm.on(T0, 0.9, datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc), "typhoon 21")
    app = create_app(cfg, SiteServices(controller=ctl))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/api/v1/bids", params={"day": "2026-11-26"},
                        headers={"Authorization": f"Bearer {keys['aggregator']}"})
    assert r.status_code == 200, r.text
    d = r.json()
    first = datetime(2026, 11, 25, 21, 0, tzinfo=timezone.utc)  # 06:00 JST
    assert [x["start"] for x in d["removed"]] == [
        (first + timedelta(minutes=30 * i)).isoformat() for i in range(36)]
    # the target and deadline, not the operator's own words (aggregators read bids)
    assert all(x["reason"].startswith("storm mode: floor to 90 %") for x in d["removed"])
    assert d["storm"].startswith("storm mode: floor to 90 %") and "typhoon" not in r.text
    assert sum(s["up_kw"] + s["down_kw"] for s in d["slots"][:12]) > 0  # the night before stays offered


async def test_posted_prices_drive_the_bid(priced):
    agg = priced.auth("aggregator", key="p1")
    slots = [{"start": s.isoformat(), "capacity_up": 5.0 if 8 <= s.tz_convert("Asia/Tokyo").hour < 10 else 0.0,
              "energy_up": 20.0} for s in day_slots(date(2026, 11, 26))]
    r = await priced.client.post("/api/v1/bids/prices", headers=agg, json={"day": "2026-11-26", "slots": slots})
    assert r.status_code == 201, r.text
    assert r.json()["slots"] == 48
    again = await priced.client.post("/api/v1/bids/prices", headers=agg, json={"day": "2026-11-26", "slots": slots})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    d = (await priced.client.get("/api/v1/bids", params={"day": "2026-11-26"}, headers=agg)).json()
    assert d["prices_source"] == "posted"
    offered = {s["start"] for s in d["slots"] if s["up_kw"] > 0}
    assert offered and offered <= {s["start"] for s in d["slots"][16:20]}  # 08:00–09:30 JST only
    assert all(s["down_kw"] == 0 and s["capacity_price_down"] is None for s in d["slots"])
    # viewers may not post; bad prices are 422 with the reason
    v = await priced.client.post("/api/v1/bids/prices", headers=priced.auth("viewer", key="p2"),
                                 json={"day": "2026-11-26", "slots": slots})
    assert v.status_code == 403
    for body, why in (
            ({"day": "2026-11-26", "slots": [{"start": "2026-11-27T00:00:00+09:00", "capacity_up": 1}]}, "wrong day"),
            ({"day": "2026-11-26", "slots": [{"start": "2026-11-26T00:10:00+09:00", "capacity_up": 1}]}, "30-minute"),
            ({"day": "2026-11-26", "slots": [{"start": "2026-11-26T00:00:00+09:00", "capacity_up": -1}]}, "greater"),
            ({"day": "2026-11-20", "slots": [{"start": "2026-11-20T00:00:00+09:00", "capacity_up": 1}]}, "past")):
        r = await priced.client.post("/api/v1/bids/prices", headers=priced.auth("aggregator", key=why), json=body)
        assert r.status_code == 422 and why in str(r.json()["detail"]), (why, r.text)


async def test_jma_document_of_the_services_removes_its_window(open_site):
    """The forecast warning fixture moved to the test days (25→26 Nov): 大雨警報 level over
    15:00–21:00 JST; with the 12 h lead, slots 03:00–20:30 are removed."""
    import json
    from pathlib import Path

    text = (Path(__file__).parents[1] / "optimizer" / "data" / "jma_0410000_heavy_rain_forecast.json").read_text("utf-8")
    doc = json.loads(text.replace("2026-06-21", "2026-11-25").replace("2026-06-22", "2026-11-26"))
    async with open_site(vpp={**PRICES, "jma": {"area_code": "0410000"}}) as priced:
        priced.app.state.services.jma_doc = lambda: doc
        r = await priced.client.get("/api/v1/bids", params={"day": "2026-11-26"}, headers=priced.auth("aggregator"))
        assert r.status_code == 200, r.text
        d = r.json()
        assert [x["start"] for x in d["removed"]] == [s["start"] for s in d["slots"][6:42]]
        assert all("大雨警報 (03) forecast" in x["reason"] for x in d["removed"])
        assert sum(s["up_kw"] + s["down_kw"] for s in d["slots"][42:]) > 0
