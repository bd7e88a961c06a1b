"""``POST /offers`` checks the EPRX product row and deliverability: an offer above the slot's
pessimistic deliverable kW is refused naming the figure, or accepted with a recorded override."""
from __future__ import annotations

import re

import pytest

# T0 (conftest) is 2026-11-25 09:00 JST: the gate for 2026-11-26 (14:00 today) is still open
TOMORROW = ["2026-11-26T08:00:00Z", "2026-11-26T08:30:00Z"]  # 17:00, 17:30 JST
TODAY = ["2026-11-25T08:00:00Z"]


def body(kw, slots=TOMORROW, **extra):
    return {"direction": "up", "slots": [{"start": s, "capacity_kw": kw} for s in slots], **extra}


async def deliverable_kw(site, start):
    r = await site.client.get("/api/v1/flexibility", params={"start": start, "end": start.replace(":00:00Z", ":30:00Z")},
                              headers={"X-API-Key": site.keys["viewer"]})
    assert r.status_code == 200, r.text
    return r.json()["slots"][0]["up_kw_band"][0]  # the pessimistic end of the band


async def test_an_offer_above_the_deliverable_kw_is_refused_with_the_figure(site):
    r = await site.client.post("/api/v1/offers", json=body(900), headers=site.auth("operator", "big"))
    assert r.status_code == 422 and r.json()["code"] == "not_deliverable"
    figure = float(re.search(r"above the deliverable ([0-9.]+) kW", r.json()["detail"]).group(1))
    assert figure == pytest.approx(await deliverable_kw(site, TOMORROW[0]), abs=1e-3)
    assert 0 < figure < 50  # a 50 kW battery above its 30 % floor
    assert site.records("offer") == []
    ok = await site.client.post("/api/v1/offers", json=body(int(figure)), headers=site.auth("operator", "fits"))
    assert ok.status_code == 201 and ok.json()["override"] is None


async def test_an_override_is_explicit_and_recorded(site):
    r = await site.client.post("/api/v1/offers", json=body(900, override="aggregator agreed to cover shortfall"),
                               headers=site.auth("operator", "ov"))
    assert r.status_code == 201, r.text
    rec = site.records("offer")[0].payload["override"]
    assert rec["reason"] == "aggregator agreed to cover shortfall"
    assert [s["offered_w"] for s in rec["slots"]] == [900_000.0] * 2 and rec["slots"][0]["deliverable_w"] < 50_000
    assert r.json()["override"] == rec
    bad = await site.client.post("/api/v1/offers", json=body(900, override=""), headers=site.auth("operator", "o2"))
    assert bad.status_code == 422  # an empty reason is no override


@pytest.mark.parametrize("extra,kw,slots,code", [
    ({"product": "三次②", "pooled": False}, 5, TOMORROW, "below_lot"),
    ({"product": "tertiary2"}, 5.5, TOMORROW, "off_step"),
    ({"product": "三次①"}, 5, TODAY, "gate_closed"),
    ({"product": "四次"}, 5, TOMORROW, "unknown_product"),
    ({"product": "一次", "dispatch": "simplified"}, 5, TOMORROW, "no_such_dispatch"),
])
async def test_product_rules_refuse_with_the_rule(site, extra, kw, slots, code):
    r = await site.client.post("/api/v1/offers", json=body(kw, slots, **extra), headers=site.auth("operator", code))
    assert r.status_code == 422 and r.json()["code"] == code, r.text
    assert site.records("offer") == []


async def test_a_pooled_product_offer_within_the_deliverable_is_accepted(site):
    r = await site.client.post("/api/v1/offers", json=body(5, product="三次②"), headers=site.auth("operator", "p"))
    assert r.status_code == 201, r.text
    assert r.json()["product"] == "三次②" and site.records("offer")[0].payload["pooled"] is True
