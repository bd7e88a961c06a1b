"""Status routes over HTTP against the running simulated site: roles, validation (4xx with a
reason, never 500), storm mode reaching the plan floor, overrides needing an expiry."""
from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from tests.testkit.wait import wait_until_sync


@pytest.fixture()
def client(site):
    with httpx.Client(base_url=site.url + "api/v1", timeout=30) as c:
        yield c


def h(site, role):
    return {"X-API-Key": site.keys[role]}


def test_aggregator_sees_site_aggregates_only(site, client):
    st = client.get("/status", headers=h(site, "aggregator"))
    assert st.status_code == 200
    body = st.json()
    assert "decisions" not in body and "overrides" not in body and "missing" not in body["flow"]
    assert set(body["battery"]["headroom"]) == {"up_kw", "down_kw"}
    assert body["timezone"] == "Asia/Tokyo"  # the site's zone, for whoever shows its times to people
    assert client.get("/devices", headers=h(site, "aggregator")).status_code == 403
    assert client.get("/alarms", headers=h(site, "aggregator")).status_code == 403
    assert client.get("/devices", headers=h(site, "viewer")).status_code == 200
    assert client.get("/status").status_code == 401


@pytest.mark.parametrize("body", [{"floor_pct": -1}, {"floor_pct": 100.5}, {"floor_pct": "lots"}, {},
                                  {"storm": True}, {"storm": True, "storm_deadline": "2020-01-01T00:00:00Z"},
                                  {"storm": True, "storm_deadline": "2099-01-01T00:00:00"},
                                  {"floor_pct": 40, "colour": "red"}, [1, 2]])
def test_bad_reserve_bodies_are_refused_with_reason(site, client, body):
    r = client.put("/reserve", json=body, headers=h(site, "operator"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


def test_floor_message_names_the_range(site, client):
    r = client.put("/reserve", json={"floor_pct": 120}, headers=h(site, "operator"))
    assert r.status_code == 422 and "between 0 and 100" in str(r.json()["detail"])
    assert client.put("/reserve", json={"floor_pct": 40}, headers=h(site, "viewer")).status_code == 403
    assert client.put("/reserve", json={"floor_pct": 40}, headers=h(site, "aggregator")).status_code == 403


def test_storm_mode_raises_the_plan_floor(site, client):
    deadline = site.rt.now() + timedelta(hours=6)  # the site's (simulated) time
    r = client.put("/reserve", json={"storm": True, "storm_target_pct": 85, "storm_deadline": deadline.isoformat()},
                   headers=h(site, "operator"))
    assert r.status_code == 200, r.text
    try:
        st = client.get("/status", headers=h(site, "viewer")).json()
        assert st["battery"]["storm"]["active"] and st["battery"]["storm"]["target_pct"] == 85.0
        floors = [s["floor_pct"] for s in client.get("/plan", headers=h(site, "viewer")).json()["slots"]]
        assert max(floors) == pytest.approx(85.0, abs=0.1) and floors[-1] == pytest.approx(85.0, abs=0.1)
        assert floors[0] < 85.0  # ramps toward the deadline
    finally:
        assert client.put("/reserve", json={"storm": False}, headers=h(site, "operator")).status_code == 200
    assert not client.get("/status", headers=h(site, "viewer")).json()["battery"]["storm"]["active"]


def test_override_needs_expiry_and_is_bounded(site, client):
    op = h(site, "operator")
    assert client.post("/override", json={"setpoint_kw": 5}, headers=op).status_code == 422
    now = site.rt.now()  # the site's (simulated) time, 60× the wall clock
    soon = (now + timedelta(minutes=10)).isoformat()
    assert client.post("/override", json={"setpoint_kw": 500, "expires_at": soon}, headers=op).status_code == 422
    past = (now - timedelta(minutes=1)).isoformat()
    assert client.post("/override", json={"setpoint_kw": 5, "expires_at": past}, headers=op).status_code == 422
    assert client.post("/override", json={"device": "nope", "setpoint_kw": 5, "expires_at": soon},
                       headers=op).status_code == 404
    assert client.post("/override", json={"setpoint_kw": 5, "expires_at": soon},
                       headers=h(site, "viewer")).status_code == 403
    r = client.post("/override", json={"setpoint_kw": -5, "expires_at": soon}, headers=op)
    assert r.status_code == 200, r.text
    st = client.get("/status", headers=op).json()
    assert st["overrides"]["bat1"]["setpoint_kw"] == -5.0


def test_ack_unknown_alarm_is_404(site, client):
    assert client.post("/alarms/nope/ack", headers=h(site, "operator")).status_code == 404
    assert client.post("/alarms/nope/ack", headers=h(site, "viewer")).status_code == 403


def test_grid_outage_shows_in_status(site, client):
    def set_outage(on: bool) -> None:
        site.loop.call_soon_threadsafe(setattr, site.rt.site, "grid_outage", on)

    def grid_state_is(want: str) -> bool:
        return client.get("/status", headers=h(site, "viewer")).json()["grid"]["state"] == want

    set_outage(True)
    try:
        wait_until_sync(lambda: grid_state_is("outage"), 15.0, interval_s=0.25, what="grid state outage")
    finally:
        set_outage(False)
    wait_until_sync(lambda: grid_state_is("connected"), 15.0, interval_s=0.25, what="the grid coming back")
    # the outage's start and end are on the record
    actions = [r.payload.get("action") for r in site.rt.ledger.query(kinds=["audit"])]
    assert "outage_start" in actions and "outage_end" in actions
