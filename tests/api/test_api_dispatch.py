"""Dispatches over HTTP: acknowledgement, reason codes, ledger records, the book's setpoints."""
from __future__ import annotations

from datetime import timedelta

from tests.api.conftest import T0

S1 = T0 + timedelta(hours=1)


def iso(t):
    return t.isoformat().replace("+00:00", "Z")


async def award(site, kw=30.0, offer_kw=50.0, key="a", direction="up"):
    r = await site.client.post("/api/v1/offers", headers=site.auth("operator", "o" + key),
                               json={"direction": direction,
                                     "override": "award-side rules under test", "slots": [{"start": iso(S1), "capacity_kw": offer_kw},
                                               {"start": iso(S1 + timedelta(minutes=30)), "capacity_kw": offer_kw}]})
    assert r.status_code == 201, r.text
    r = await site.client.post("/api/v1/awards", headers=site.auth("aggregator", "a" + key),
                               json={"offer_id": r.json()["id"],
                                     "slots": [{"start": iso(S1), "capacity_kw": kw},
                                               {"start": iso(S1 + timedelta(minutes=30)), "capacity_kw": kw}]})
    assert r.status_code == 201, r.text
    return r.json()


async def dispatch(site, award_id, key="d1", **kw):
    body = {"award_id": award_id, "type": "delta", "start": iso(S1), "end": iso(S1 + timedelta(hours=1)),
            "value_kw": 20.0, **kw}
    return await site.client.post("/api/v1/dispatches", headers=site.auth("aggregator", key), json=body)


async def test_accepted_dispatch_feeds_the_book_and_the_ledger(site):
    a = await award(site)
    r = await dispatch(site, a["id"])
    assert r.status_code == 201, r.text
    d = r.json()
    assert (d["status"], d["accepted_kw"], d["reasons"], d["state"]) == ("accepted", 20.0, [], "pending")
    kinds = [x.kind for x in site.records()]
    assert kinds[-2:] == ["dispatch", "ack"]
    assert site.records("ack")[-1].ref == d["id"]
    book = site.app.state.book
    assert book(T0) == {}  # not yet active
    props = book(S1 + timedelta(minutes=5))
    assert props["bat1"].setpoint_w == 20000.0 and props["bat1"].source == "dispatch"
    assert (await site.client.get(f"/api/v1/dispatches/{d['id']}", headers=site.auth("viewer"))).json()["id"] == d["id"]
    # replay with the same key returns the original; a different body conflicts
    r2 = await dispatch(site, a["id"])
    assert r2.status_code == 201 and r2.headers.get("Idempotent-Replayed") == "true" and r2.json()["id"] == d["id"]
    assert (await dispatch(site, a["id"], value_kw=5.0)).status_code == 409


async def test_more_than_awarded_is_capped_partial_outside_award(site):
    a = await award(site, kw=20.0)
    d = (await dispatch(site, a["id"], value_kw=45.0)).json()
    assert (d["status"], d["accepted_kw"], d["reasons"]) == ("partial", 20.0, ["outside_award"])


async def test_reserve_floor_caps_dispatch_when_soc_fell(site):
    a = await award(site, kw=30.0)
    site.soc["bat1"] = 0.35  # 5 % above the 30 % floor: 100 kWh·0.05·0.95 / 1 h = 4.75 kW
    d = (await dispatch(site, a["id"], value_kw=25.0)).json()
    assert d["status"] == "partial" and d["reasons"] == ["reserve_floor"]
    assert abs(d["accepted_kw"] - 4.75) < 1e-6
    site.soc["bat1"] = 0.30
    d = (await dispatch(site, a["id"], key="d2", value_kw=10.0)).json()
    assert (d["status"], d["reasons"]) == ("rejected", ["reserve_floor"])


async def test_rejections_outside_award_and_device_unavailable(site):
    a = await award(site)
    r = await dispatch(site, a["id"], start=iso(S1 + timedelta(hours=2)), end=iso(S1 + timedelta(hours=3)))
    assert (r.json()["status"], r.json()["reasons"]) == ("rejected", ["outside_award"])
    r = await dispatch(site, "nope", key="d2")
    assert r.json()["reasons"] == ["outside_award"]
    r = await dispatch(site, a["id"], key="d3", type="setpoint", value_kw=-10.0)  # charging under an up award
    assert r.json()["reasons"] == ["outside_award"]
    del site.soc["bat1"]
    r = await dispatch(site, a["id"], key="d4")
    assert (r.json()["status"], r.json()["reasons"]) == ("rejected", ["device_unavailable"])
    r = await dispatch(site, a["id"], key="d5", type="soc_target", value_kw=None, soc_target=0.1)
    assert r.status_code == 201


async def test_soc_target_below_floor_is_rejected(site):
    a = await award(site)
    r = await dispatch(site, a["id"], type="soc_target", value_kw=None, soc_target=0.2)
    assert (r.json()["status"], r.json()["reasons"]) == ("rejected", ["reserve_floor"])
    r = await dispatch(site, a["id"], key="d2", type="soc_target", value_kw=None, soc_target=0.5)
    assert r.json()["status"] == "accepted"
    # 0.6 → 0.5 of 100 kWh in the hour left = 10 kW discharge
    props = site.app.state.book(S1)
    assert abs(props["bat1"].setpoint_w - 10000.0) < 1e-6


async def test_patch_and_delete(site):
    a = await award(site)
    d = (await dispatch(site, a["id"])).json()
    h = site.auth("aggregator", "p1")
    r = await site.client.patch(f"/api/v1/dispatches/{d['id']}", headers=h, json={"value_kw": 25.0})
    assert r.status_code == 200 and r.json()["accepted_kw"] == 25.0
    assert site.app.state.book(S1)["bat1"].setpoint_w == 25000.0
    r = await site.client.patch(f"/api/v1/dispatches/{d['id']}", headers=site.auth("aggregator", "p2"),
                                json={"start": iso(S1 + timedelta(hours=5)), "end": iso(S1 + timedelta(hours=6))})
    assert r.status_code == 409 and r.json()["code"] == "modification_rejected"
    r = await site.client.delete(f"/api/v1/dispatches/{d['id']}", headers=site.auth("aggregator"))
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert site.app.state.book(S1) == {}
    assert (await site.client.delete(f"/api/v1/dispatches/{d['id']}", headers=site.auth("aggregator"))).status_code == 200
    actions = [x.payload["action"] for x in site.records("dispatch")]
    assert actions == ["create", "modify", "modify", "cancel"]
    # the book rebuilt from the ledger agrees
    from vpp.market.dispatch import DispatchBook
    b2 = DispatchBook()
    b2.load(site.app.state.ledger)
    assert b2.get(d["id"]).cancelled_at is not None and b2.get(d["id"]).request.value == 25000.0


async def test_viewer_cannot_dispatch(site):
    a = await award(site)
    r = await site.client.post("/api/v1/dispatches", headers=site.auth("viewer", "v"),
                               json={"award_id": a["id"], "type": "delta", "start": iso(S1),
                                     "end": iso(S1 + timedelta(hours=1)), "value_kw": 1})
    assert r.status_code == 403
