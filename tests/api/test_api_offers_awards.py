"""Offer → award flow over HTTP against a real SQLite ledger and battery-based flexibility.

Flexibility arithmetic (conftest): 100 kWh battery, floor 30 %, η_d 0.95. At SoC 0.60 the
energy above the floor is 0.30 × 100 kWh × 0.95 = 28.5 kWh; over a 2-hour window that is
14.25 kW sustained per slot.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

SLOTS = ["2026-11-25T05:00:00Z", "2026-11-25T05:30:00Z", "2026-11-25T06:00:00Z", "2026-11-25T06:30:00Z"]


def offer_body(kw=20.0, slots=SLOTS, **extra):
    # no EPRX product (an intraday offer to the aggregator, past the day-ahead gate); 20 kW is
    # above the 14.25 kW deliverable on purpose (the award-time clipping is under test), so
    # the offer carries the recorded override
    return {"direction": "up", "price_per_kwh": 12.5, "override": "award clipping under test",
            "slots": [{"start": s, "capacity_kw": kw} for s in slots], **extra}


def award_body(offer_id, kw, slots=SLOTS):
    return {"offer_id": offer_id, "slots": [{"start": s, "capacity_kw": kw} for s in slots]}


async def post_offer(site, key="offer-1", **kw):
    r = await site.client.post("/api/v1/offers", json=offer_body(**kw), headers=site.auth("operator", key))
    assert r.status_code == 201, r.text
    return r.json()


async def test_offer_then_awards_down_to_the_reserve_floor(site):
    offer = await post_offer(site)
    assert offer["window"] == {"start": "2026-11-25T05:00:00+00:00", "end": "2026-11-25T07:00:00+00:00"}
    assert [s["capacity_kw"] for s in offer["slots"]] == [20.0] * 4 and offer["actor"] == "operator-1"

    r = await site.client.post("/api/v1/awards", json=award_body(offer["id"], 10), headers=site.auth("aggregator", "a1"))
    assert r.status_code == 201, r.text
    a1 = r.json()
    assert a1["status"] == "accepted" and a1["offer_id"] == offer["id"]
    assert [s["accepted_kw"] for s in a1["slots"]] == [10.0] * 4

    # 10 kW more fits the offer (20 kW) but only 14.25 − 10 = 4.25 kW is left above the floor
    r = await site.client.post("/api/v1/awards", json=award_body(offer["id"], 10), headers=site.auth("aggregator", "a2"))
    a2 = r.json()
    assert r.status_code == 201 and a2["status"] == "partial"
    assert [s["accepted_kw"] for s in a2["slots"]] == pytest.approx([4.25] * 4)
    assert {s["reason"] for s in a2["slots"]} == {"reserve_floor"}

    # nothing of the offer is left: 10 + 10 = 20 kW awarded
    r = await site.client.post("/api/v1/awards", json=award_body(offer["id"], 0.5), headers=site.auth("aggregator", "a3"))
    assert r.status_code == 422 and r.json()["code"] == "exceeds_offer"

    got = await site.client.get(f"/api/v1/awards/{a2['id']}", headers={"X-API-Key": site.keys["viewer"]})
    assert got.json() == a2
    awards = site.records("award")
    assert [a.ref for a in awards] == [offer["id"]] * 2
    assert awards[1].payload["slots"][0]["accepted_w"] == pytest.approx(4250.0)


async def test_award_at_the_floor_is_refused_with_a_reason(site):
    site.soc["bat1"] = 0.30
    offer = await post_offer(site)
    r = await site.client.post("/api/v1/awards", json=award_body(offer["id"], 5, SLOTS[:1]),
                               headers=site.auth("aggregator", "a1"))
    assert r.status_code == 201
    assert r.json()["status"] == "refused" and r.json()["slots"][0] == {
        "start": SLOTS[0].replace("Z", "+00:00"), "awarded_kw": 5.0, "accepted_kw": 0.0, "reason": "reserve_floor"}


async def test_down_offers_use_charge_headroom(site):
    # headroom (0.95 − 0.60) × 100 kWh / 0.95 = 36.84 kWh over 2 h = 18.42 kW
    offer = await post_offer(site, direction="down")
    r = await site.client.post("/api/v1/awards", json=award_body(offer["id"], 20), headers=site.auth("aggregator", "d1"))
    assert r.json()["status"] == "partial"
    assert r.json()["slots"][0]["accepted_kw"] == pytest.approx(35 / 0.95 / 2, rel=1e-9)


async def test_idempotent_replay_returns_the_original_and_conflicts_are_409(site):
    first = await post_offer(site, key="same")
    site.clock.t += timedelta(days=1)  # the window is now in the past: a replay must still succeed
    r = await site.client.post("/api/v1/offers", json=offer_body(), headers=site.auth("operator", "same"))
    assert r.status_code == 201 and r.json() == first and r.headers["idempotent-replayed"] == "true"
    r = await site.client.post("/api/v1/offers", json=offer_body(kw=21), headers=site.auth("operator", "same"))
    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"
    assert len(site.records()) == 1

    site.clock.t -= timedelta(days=1)
    body = award_body(first["id"], 1)
    a = await site.client.post("/api/v1/awards", json=body, headers=site.auth("aggregator", "award-key"))
    again = await site.client.post("/api/v1/awards", json=body, headers=site.auth("aggregator", "award-key"))
    assert again.json() == a.json() and again.headers["idempotent-replayed"] == "true"
    conflict = await site.client.post("/api/v1/awards", json=award_body(first["id"], 2),
                                      headers=site.auth("aggregator", "award-key"))
    assert conflict.status_code == 409
    # keys are scoped per actor and kind: the operator may reuse the string
    other = await site.client.post("/api/v1/awards", json=body, headers=site.auth("operator", "award-key"))
    assert other.status_code == 201 and other.json()["id"] != a.json()["id"]
    assert len(site.records("award")) == 2


def _mutate(**kw):
    return lambda oid: {**offer_body(), **kw}


BAD_OFFERS = [
    ("off boundary", _mutate(slots=[{"start": "2026-11-25T05:10:00Z", "capacity_kw": 1}]), 422, "30-minute boundary"),
    ("seconds", _mutate(slots=[{"start": "2026-11-25T05:00:01Z", "capacity_kw": 1}]), 422, "30-minute boundary"),
    ("naive time", _mutate(slots=[{"start": "2026-11-25T05:00:00", "capacity_kw": 1}]), 422, "timezone"),
    ("negative", _mutate(slots=[{"start": SLOTS[0], "capacity_kw": -1}]), 422, "greater than or equal to 0"),
    ("absurd", _mutate(slots=[{"start": SLOTS[0], "capacity_kw": 1e9}]), 422, "less than or equal"),
    ("not a number", _mutate(slots=[{"start": SLOTS[0], "capacity_kw": "lots"}]), 422, "valid number"),
    ("empty", _mutate(slots=[]), 422, "at least 1"),
    ("duplicate", _mutate(slots=[{"start": SLOTS[0], "capacity_kw": 1}] * 2), 422, "unique"),
    ("too long", _mutate(slots=[{"start": SLOTS[0], "capacity_kw": 1},
                                {"start": "2026-12-02T05:00:00Z", "capacity_kw": 1}]), 422, "7 days"),
    ("in the past", _mutate(slots=[{"start": "2026-11-24T23:30:00Z", "capacity_kw": 1}]), 422, "in the past"),
    ("unknown field", _mutate(colour="red"), 422, "Extra inputs"),
    ("bad direction", _mutate(direction="sideways"), 422, "'up' or 'down'"),
    ("negative price", _mutate(price_per_kwh=-3), 422, "greater than or equal to 0"),
]


@pytest.mark.parametrize("name,make,status,reason", BAD_OFFERS, ids=[b[0] for b in BAD_OFFERS])
async def test_bad_offers_are_4xx_with_a_reason_and_nothing_is_stored(site, name, make, status, reason):
    r = await site.client.post("/api/v1/offers", json=make(None), headers=site.auth("operator", f"bad-{name}"))
    assert r.status_code == status, r.text
    assert reason in r.text
    assert site.records() == []


async def test_raw_bodies_that_are_not_json_or_not_finite(site):
    h = {**site.auth("operator", "raw"), "Content-Type": "application/json"}
    for raw in ["{not json", json.dumps(offer_body()).replace("20.0", "NaN"), "[]", ""]:
        r = await site.client.post("/api/v1/offers", content=raw, headers=h)
        assert r.status_code == 422, (raw, r.text)
    assert site.records() == []


async def test_missing_idempotency_key_is_400(site):
    h = {"Authorization": f"Bearer {site.keys['operator']}"}
    r = await site.client.post("/api/v1/offers", json=offer_body(), headers=h)
    assert r.status_code == 400 and "Idempotency-Key" in r.json()["detail"]
    r = await site.client.post("/api/v1/offers", json=offer_body(), headers={**h, "Idempotency-Key": "x" * 201})
    assert r.status_code == 400
    assert site.records() == []


async def test_bad_awards_are_4xx_and_nothing_is_stored(site):
    offer = await post_offer(site)
    cases = [
        (award_body("0" * 32, 1), 404, "not found"),
        (award_body("../etc", 1), 422, "pattern"),
        (award_body(offer["id"], 21), 422, "exceeds the offered capacity"),
        (award_body(offer["id"], 1, ["2026-11-25T07:00:00Z"]), 422, "not part of offer"),
        (award_body(offer["id"], -1), 422, "greater than or equal to 0"),
        ({"slots": [{"start": SLOTS[0], "capacity_kw": 1}]}, 422, "offer_id"),
    ]
    for i, (body, status, reason) in enumerate(cases):
        r = await site.client.post("/api/v1/awards", json=body, headers=site.auth("aggregator", f"bad{i}"))
        assert r.status_code == status and reason in r.text, (body, r.text)
    site.clock.t += timedelta(hours=6)
    r = await site.client.post("/api/v1/awards", json=award_body(offer["id"], 1), headers=site.auth("aggregator", "late"))
    assert r.status_code == 422 and "in the past" in r.text
    assert [r.kind for r in site.records()] == ["offer"]
    r = await site.client.get("/api/v1/offers/nope", headers={"X-API-Key": site.keys["viewer"]})
    assert r.status_code == 404


async def test_unexpected_errors_are_a_logged_500_and_persist_nothing(open_site, caplog):
    from vpp.market.flexibility import FlexSlot, slot_starts

    down = {"now": False}

    def flaky(start, end):  # offers and awards both ask for the deliverable power
        if down["now"]:
            raise RuntimeError("flexibility service down")
        return [FlexSlot(t, 50_000.0, 50_000.0) for t in slot_starts(start, end)]

    async with open_site(flexibility=flaky, raise_app_exceptions=False) as site:
        offer = await post_offer(site)
        down["now"] = True
        r = await site.client.post("/api/v1/awards", json=award_body(offer["id"], 1), headers=site.auth("aggregator"))
        assert r.status_code == 500 and r.json() == {"detail": "internal error", "code": "internal"}
        assert "flexibility service down" in caplog.text
        r = await site.client.post("/api/v1/offers", json=offer_body(), headers=site.auth("operator", "o2"))
        assert r.status_code == 500
        assert [x.kind for x in site.records()] == ["offer"]


async def test_ledger_export_for_the_operator(site):
    offer = await post_offer(site)
    await site.client.post("/api/v1/awards", json=award_body(offer["id"], 5), headers=site.auth("aggregator", "e1"))
    q = {"start": "2026-11-24T00:00:00Z", "end": "2026-11-26T00:00:00Z"}
    r = await site.client.get("/api/v1/ledger/export", params=q, headers={"X-API-Key": site.keys["operator"]})
    assert r.status_code == 200
    assert [x["kind"] for x in r.json()["records"]] == ["offer", "award"]
    r = await site.client.get("/api/v1/ledger/export", params={**q, "format": "csv", "kind": "award"},
                              headers={"X-API-Key": site.keys["operator"]})
    lines = r.text.strip().splitlines()
    assert r.headers["content-type"].startswith("text/csv") and len(lines) == 2 and ",award," in lines[1]
    r = await site.client.get("/api/v1/ledger/export", params={**q, "kind": "bogus"},
                              headers={"X-API-Key": site.keys["operator"]})
    assert r.status_code == 422


async def test_concurrent_awards_cannot_oversell_an_offer(site):
    import asyncio

    site.soc["bat1"] = 0.95  # 0.65 × 100 kWh × 0.95 / 2 h = 30.9 kW: the offer (20 kW) binds
    offer = await post_offer(site)
    rs = await asyncio.gather(*[
        site.client.post("/api/v1/awards", json=award_body(offer["id"], 5), headers=site.auth("aggregator", f"c{i}"))
        for i in range(6)
    ])
    assert sorted(r.status_code for r in rs) == [201] * 4 + [422] * 2
    assert sum(s.payload["slots"][0]["awarded_w"] for s in site.records("award")) == 20_000
