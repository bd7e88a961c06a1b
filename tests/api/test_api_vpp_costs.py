"""The VPP view and costs routes over HTTP: phases of dispatches as the clock moves, roles,
and the costs of a period with no metering (zeros, not errors) and with a settled award."""
from __future__ import annotations

from datetime import timedelta

from tests.api.conftest import T0
from tests.api.test_api_dispatch import S1, award, dispatch


async def activity(site, role="viewer"):
    r = await site.client.get("/api/v1/vpp/activity", headers=site.auth(role))
    assert r.status_code == 200, r.text
    return r.json()


async def test_vpp_activity_lists_offer_award_and_dispatch_phases(site):
    a = await award(site, kw=20.0)
    d1 = (await dispatch(site, a["id"], key="d1", value_kw=10.0)).json()
    d2 = (await dispatch(site, a["id"], key="d2", value_kw=45.0)).json()   # capped: partial
    body = await activity(site)
    assert [x["id"] for x in body["awards"]] == [a["id"]]
    aw = body["awards"][0]
    assert aw["accepted_kw"] == 20.0 and aw["accepted_kwh"] == 20.0 and aw["status"] == "accepted"
    assert body["offers"][0]["id"] == a["offer_id"] and body["offers"][0]["max_kw"] == 50.0
    phases = {x["id"]: x["phase"] for x in body["dispatches"]}
    assert phases == {d1["id"]: "accepted", d2["id"]: "partial"}
    r = await site.client.delete(f"/api/v1/dispatches/{d2['id']}", headers=site.auth("aggregator"))
    assert r.status_code == 200
    site.clock.t = S1 + timedelta(minutes=10)
    phases = {x["id"]: x["phase"] for x in (await activity(site))["dispatches"]}
    assert phases == {d1["id"]: "executing", d2["id"]: "cancelled"}
    site.clock.t = S1 + timedelta(hours=2)
    assert {x["id"]: x["phase"] for x in (await activity(site))["dispatches"]}[d1["id"]] == "done"
    # nothing per device or per household in it
    assert "bat1" not in str(await activity(site, "operator"))


async def test_vpp_activity_and_costs_roles_and_bad_input(site):
    for path in ("/api/v1/vpp/activity", "/api/v1/costs"):
        assert (await site.client.get(path, headers=site.auth("aggregator"))).status_code == 403
        assert (await site.client.get(path)).status_code == 401
    for q in ("period=year", "period="):
        r = await site.client.get("/api/v1/costs?" + q, headers=site.auth("viewer"))
        assert r.status_code == 422 and r.json()["detail"]
    assert (await site.client.get("/api/v1/vpp/activity?days=0", headers=site.auth("viewer"))).status_code == 422


async def test_costs_without_metering_are_zero_and_say_so(site):
    r = await site.client.get("/api/v1/costs?period=month", headers=site.auth("operator"))
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["metered_slots"] == 0 and c["slots"] > 0 and c["currency"] == "JPY"
    assert c["actual"]["cost"] == 0.0 and c["savings"] == 0.0 and c["vpp"]["total"] == 0.0
    # T0 is 09:00 in Tokyo: today's window starts at local midnight
    today = (await site.client.get("/api/v1/costs", headers=site.auth("viewer"))).json()
    assert today["start"].startswith("2026-11-24T15:00:00") and today["slots"] == 18


async def test_costs_say_so_when_the_store_is_gone(site, tmp_path):
    from vpp.config import parse_config
    from vpp.storage.embedded import EmbeddedStore

    raw = site.config.model_dump(mode="json")
    raw["devices"].append({"id": "m1", "kind": "meter", "register_map": "sdm630", "role": "grid"})
    raw["storage"] = {"backend": "embedded", "path": str(tmp_path / "gone.sqlite")}
    cfg = site.app.state.config = parse_config(raw)
    site.app.state.services.store = EmbeddedStore(cfg.storage, site=cfg.site.name)  # never opened: reads fail
    r = await site.client.get("/api/v1/costs", headers=site.auth("viewer"))
    assert r.status_code == 503 and "store unavailable" in r.json()["detail"]
