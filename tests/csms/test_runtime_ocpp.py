"""OCPP stations in the running service: simulated stations connect to its central system,
the controller treats them like any charger, drivers set their needs through the API, and in a
grid outage every station is paused (the reserve never feeds cars) — a shortened outage scenario."""
from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
import pytest

from simulators.ocpp_station import Quirks
from tests.runtime.sites import SiteThread
from tests.testkit.sites import make_site
from tests.testkit.wait import wait_until_sync

STATIONS = [
    {"id": "cp16", "kind": "ev_charger", "protocol": "ocpp", "version": "1.6", "ocpp": {"password": "pw-a"},
     "ratings": {"voltage_v": 200, "min_current_a": 6, "max_current_a": 32}},
    {"id": "cp201", "kind": "ev_charger", "protocol": "ocpp", "version": "2.0.1", "ocpp": {"password": "pw-b"},
     "ratings": {"voltage_v": 200, "min_current_a": 6, "max_current_a": 32}},
]


@pytest.fixture(scope="module")
def ocpp_site(tmp_path_factory):
    from vpp.api.auth import create_key
    from vpp.commands.demo import simulated_runtime

    base = make_site("one-of-each")
    devices = [d.model_dump(mode="json") for d in base.devices if d.kind != "ev_charger"] + STATIONS
    cfg = make_site("one-of-each", devices=devices, ocpp={"security_profile": 1})
    rt = simulated_runtime(cfg, speed=60.0, data_dir=tmp_path_factory.mktemp("ocpp-site"), weather="clear-sky")
    rt.site.ocpp.quirks["cp16"] = Quirks(zero_limit_rejected=True)  # pauses by stopping its transaction
    keys = {role: create_key(rt.config.api.keys_path, role, f"t-{role}")[0] for role in ("operator", "viewer")}
    st = SiteThread(rt)
    st.start()
    st.keys = keys
    try:
        yield st
    finally:
        st.stop()


def _stations(st):
    return st.rt.site.ocpp.stations


def test_stations_connect_and_are_controlled_like_chargers(ocpp_site):
    st = ocpp_site
    rt = st.rt
    wait_until_sync(lambda: all(s.model.tx_id is not None for s in _stations(st).values()), 30)
    wait_until_sync(lambda: set(rt.controller.ev_commands) >= {"cp16", "cp201"}, 30)
    for sid in ("cp16", "cp201"):
        assert rt.fleet.latest(sid).values["plugged"] == 1.0
        assert rt.csms.stations[sid].transaction_id == _stations(st)[sid].model.tx_id
    # what the loop commands is what the station works to (a profile naming the transaction)
    wait_until_sync(lambda: all(abs(_stations(st)[c].model.limit_a() - rt.controller.ev_commands[c].amps) < 0.05
                                for c in ("cp16", "cp201")), 30)


def test_driver_needs_through_the_api(ocpp_site):
    st = ocpp_site
    rt = st.rt
    wait_until_sync(lambda: rt.controller.plan is not None and "cp201" in rt.controller.ev_plugs, 30)
    op = {"Authorization": f"Bearer {st.keys['operator']}"}
    viewer = {"Authorization": f"Bearer {st.keys['viewer']}"}
    api = rt.url + "api/v1"
    with httpx.Client(timeout=30) as c:
        sessions = c.get(f"{api}/ev/sessions", headers=viewer).json()
        assert {s["charger"] for s in sessions} == {"cp16", "cp201"}
        assert all(s["source"] == "default" and s["needed_wh"] == 15_000 for s in sessions)
        dep = (rt.now() + timedelta(hours=10)).isoformat()
        for bad in ({"energy_wh": -1}, {"energy_wh": 1e9}, {"departure": "tomorrow"}, {"target_soc": 0.8},
                    {"energy_wh": 1000, "target_soc": 0.8, "soc": 0.2, "capacity_wh": 4e4}, {}, {"nope": 1},
                    {"departure": (rt.now() - timedelta(hours=1)).isoformat()}):
            r = c.put(f"{api}/ev/sessions/cp201/needs", json=bad, headers=op)
            assert r.status_code == 422, (bad, r.text)
        assert c.put(f"{api}/ev/sessions/nope/needs", json={"energy_wh": 1000}, headers=op).status_code == 404
        assert c.put(f"{api}/ev/sessions/cp201/needs", json={"energy_wh": 1000}, headers=viewer).status_code == 403
        r = c.put(f"{api}/ev/sessions/cp201/needs", json={"energy_wh": 20_000, "departure": dep}, headers=op)
        assert r.status_code == 200 and r.json()["needed_wh"] == 20_000 and r.json()["source"] == "operator"
        link = c.post(f"{api}/ev/sessions/cp16/link", headers=op).json()
        assert c.get(f"{api}/ev/driver/not-a-token").status_code == 404
        r = c.put(rt.url.rstrip("/") + link["path"], json={"target_soc": 0.8, "soc": 0.3, "capacity_wh": 60_000,
                                                            "departure": dep})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["charger"] == "cp16" and body["source"] == "driver" and body["needed_wh"] == pytest.approx(30_000)
        assert body["departure"] is not None and body["planned_wh"] >= body["delivered_wh"]
    plan = rt.controller.plan
    assert {s.charger_id: s.energy_wh for s in plan.problem.evs}["cp16"] <= 30_000  # minus what it got already
    assert max(s.energy_wh for s in plan.problem.evs if s.charger_id == "cp16") > 15_000


def test_grid_outage_pauses_every_station_and_restores(ocpp_site):
    st = ocpp_site
    rt = st.rt
    sims = _stations(st)
    wait_until_sync(lambda: all(s.model.tx_id is not None for s in sims.values()), 30)
    st.loop.call_soon_threadsafe(setattr, rt.site, "grid_outage", True)
    try:
        wait_until_sync(lambda: rt.controller.alarms.is_active("grid"), 30)
        # every station pauses: cp201 at a 0 A profile, cp16 (refuses 0) by a stopped transaction
        wait_until_sync(lambda: sims["cp201"].model.limit_a() == 0.0 and sims["cp16"].model.tx_id is None, 30)
        end = time.monotonic() + 3.0  # ~3 simulated minutes of island operation
        while time.monotonic() < end:
            assert all(s.model.power_w == 0.0 for s in sims.values()), "a car drew power from the island"
            assert all(c.amps == 0.0 for c in rt.controller.ev_commands.values())
            time.sleep(0.1)
        assert rt.fleet.latest("cp16").values["current_limit_a"] == 0.0
    finally:
        st.loop.call_soon_threadsafe(setattr, rt.site, "grid_outage", False)
    wait_until_sync(lambda: not rt.controller.alarms.is_active("grid"), 30)
    # back on the grid: the stations follow the plan again (cp16 resumes with a new transaction
    # for the same car when its limit is above 0)
    def following() -> bool:
        cmds = rt.controller.ev_commands
        if any(cmds[c].source == "outage" for c in sims):
            return False
        ok16 = (sims["cp16"].model.tx_id is None) if cmds["cp16"].amps == 0 else (
            sims["cp16"].model.tx_id is not None and abs(sims["cp16"].model.limit_a() - cmds["cp16"].amps) < 0.05)
        return ok16 and abs(sims["cp201"].model.limit_a() - cmds["cp201"].amps) < 0.05
    wait_until_sync(following, 30)


def test_dashboard_shows_and_sets_needs(ocpp_site):
    """The EV view in Chromium: the operator enters 30 kWh by 07:00 for cp201; the row shows
    needed, planned, delivered and the departure in site time."""
    import os

    from playwright.sync_api import sync_playwright

    from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS

    assert os.path.exists(CHROMIUM), "install the Debian chromium package (make sysdeps)"
    st = ocpp_site
    wait_until_sync(lambda: "cp201" in st.rt.controller.ev_plugs, 30)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = b.new_page(locale="ja-JP", bypass_csp=True)  # string predicates run through eval
            page.add_init_script("localStorage.setItem('vpp_lang', 'en')")
            page.goto(st.rt.url)
            page.fill("#in-key", st.keys["operator"])
            page.click("#login-form button.primary")
            page.click("#tab-ev")
            page.wait_for_selector("#ev-row-cp201", timeout=30_000)
            row = page.locator("#ev-row-cp201")
            row.locator(".ev-in-energy").fill("30")
            row.locator(".ev-in-departure").fill("07:00")
            row.locator("button[type=submit]").click()
            page.wait_for_function("document.querySelector('#ev-row-cp201 .ev-needed')?.textContent === '30.0 kWh'",
                                   timeout=30_000)
            row = page.locator("#ev-row-cp201")
            assert row.locator(".ev-departure").text_content() == "07:00"
            assert row.locator(".ev-source").text_content() == "operator"
            planned = float(row.locator(".ev-planned").text_content().split()[0])
            delivered = float(row.locator(".ev-delivered").text_content().split()[0])
            assert planned >= delivered >= 0.0
            need = st.rt.controller.ev_needs.get("cp201")
            assert need.energy_wh == 30_000 and need.departure.astimezone(
                __import__("zoneinfo").ZoneInfo("Asia/Tokyo")).strftime("%H:%M") == "07:00"
            viewer = b.new_page(bypass_csp=True)
            viewer.goto(st.rt.url)
            viewer.fill("#in-key", st.keys["viewer"])
            viewer.click("#login-form button.primary")
            viewer.click("#tab-ev")
            viewer.wait_for_selector("#ev-row-cp201", timeout=30_000)
            assert viewer.locator("#ev-row-cp201 form").count() == 0  # viewers read, never set
        finally:
            b.close()
