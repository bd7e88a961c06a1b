"""The running site's market API is wired to its controller: flexibility comes from the plan
and an aggregator's dispatch reaches the controller's battery decisions."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.testkit.wait import wait_until_sync
from vpp.api import views

SLOT = timedelta(minutes=30)


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def slot_start(t: datetime) -> datetime:
    return t - timedelta(seconds=t.timestamp() % SLOT.total_seconds())


@pytest.fixture()
def agg(site):
    with httpx.Client(base_url=site.url + "api/v1", timeout=30,
                      headers={"X-API-Key": site.keys["aggregator"]}) as c:
        yield c


def wait_for_plan(site, timeout_s: float = 30.0) -> None:
    wait_until_sync(lambda: site.rt.controller.plan is not None, timeout_s, interval_s=0.2, what="a plan")


def test_flexibility_comes_from_the_plan(site, agg):
    wait_for_plan(site)
    a = slot_start(site.rt.now()) + SLOT
    r = agg.get("/flexibility", params={"start": iso(a), "end": iso(a + 2 * SLOT)})
    assert r.status_code == 200, r.text
    slots = r.json()["slots"]
    assert len(slots) == 2 and [s["source"] for s in slots] == ["plan", "plan"], slots


# --------------------------------------------------------------------------- simulated clock
JST = timezone(timedelta(hours=9))


def yesterday_jst(hh: int, mm: int) -> datetime:
    """Yesterday hh:mm in Japan: at least 13 h from now whatever the time of day."""
    d = datetime.now(JST).date() - timedelta(days=1)
    return datetime(d.year, d.month, d.day, hh, mm, tzinfo=JST)


@pytest.fixture(scope="module")
def simsite(tmp_path_factory):
    """A Runtime at 60× whose simulated day starts yesterday 10:50 JST (the next settlement
    slot starts 10 wall seconds in), with operator and aggregator keys."""
    from vpp.api.auth import create_key
    from vpp.commands.demo import simulated_runtime
    from vpp.config import read_config

    from .sites import EXAMPLE, SiteThread

    cfg = read_config(EXAMPLE)
    start = yesterday_jst(10, 50)
    rt = simulated_runtime(cfg, speed=60.0, sim_start=start, data_dir=tmp_path_factory.mktemp("simrt"))
    keys = {role: create_key(rt.config.api.keys_path, role, f"t-{role}")[0] for role in ("operator", "aggregator")}
    st = SiteThread(rt)
    st.start()
    st.keys, st.url, st.start_at = keys, rt.url, start
    try:
        yield st
    finally:
        st.stop()


def test_controller_plans_on_the_simulated_clock(simsite):
    """Plans start at the simulated time (yesterday), not the wall clock, and the API reports
    the same time."""
    rt = simsite.rt
    wait_for_plan(simsite)
    slot_s = rt.config.optimiser.slot_s
    now = rt.now()
    wall = datetime.now(timezone.utc)
    assert abs((now - wall).total_seconds()) > 6 * 3600  # the check below can tell them apart
    plan = rt.controller.plan
    assert abs((plan.schedule.start - now).total_seconds()) <= slot_s, (plan.schedule.start, now)
    assert abs((plan.made_at - now).total_seconds()) <= rt.config.optimiser.plan_interval_s + 600
    h = {"X-API-Key": simsite.keys["aggregator"]}
    st = httpx.get(simsite.url + "api/v1/status", headers=h, timeout=10).json()
    ts = datetime.fromisoformat(st["ts"])
    assert abs((ts - now).total_seconds()) < 600 and st["sim_time"] == st["ts"]
    # the newest reading is on the same (simulated) clock, its age in wall seconds
    newest = datetime.fromisoformat(st["newest_reading"])
    assert abs((ts - newest).total_seconds()) < 5 * 60, (st["ts"], st["newest_reading"])  # 5 wall s at 60×
    assert 0 <= st["newest_reading_age_s"] < 5
    slots = httpx.get(simsite.url + "api/v1/plan", headers=h, timeout=10).json()["slots"]
    assert abs((datetime.fromisoformat(slots[0]["start"]) - ts).total_seconds()) <= slot_s
    # the scheduler keeps the 60 s dispatch cadence in simulated time: one wall second at 60×
    jobs = {j.id: j.trigger.interval.total_seconds() for j in rt.scheduler.get_jobs()}
    assert jobs["dispatch"] == pytest.approx(rt.config.optimiser.dispatch_interval_s / 60)
    assert jobs["plan"] == pytest.approx(rt.config.optimiser.plan_interval_s / 60)


def test_http_dispatch_moves_the_simulated_battery(simsite):
    """An aggregator's dispatch posted over HTTP to the running site becomes the controller's
    decision and the simulated battery follows it within a few dispatch cycles; the SoC stays
    above the reserve floor."""
    rt = simsite.rt
    wait_for_plan(simsite)
    s1 = slot_start(rt.now()) + SLOT
    agg = {"X-API-Key": simsite.keys["aggregator"]}
    op = {"X-API-Key": simsite.keys["operator"]}  # the site offers (operators only), the aggregator awards
    with httpx.Client(base_url=simsite.url + "api/v1", timeout=30) as c:
        flex = c.get("/flexibility", params={"start": iso(s1), "end": iso(s1 + SLOT)}, headers=agg).json()["slots"]
        assert flex and flex[0]["available"] and flex[0]["source"] == "plan", flex  # plan and window: sim time
        # late morning the plan still has energy above the floor: discharge more (up); the
        # larger side, should the season's sun say otherwise
        direction = "up" if flex[0]["up_kw"] >= flex[0]["down_kw"] else "down"
        kw = round(min(flex[0][f"{direction}_kw"], 20.0), 1)
        assert kw >= 5.0, flex
        sign = 1 if direction == "up" else -1  # battery > 0 = discharge
        slot = [{"start": iso(s1), "capacity_kw": kw}]
        offer = c.post("/offers", headers={**op, "Idempotency-Key": "rt-o1"},
                       json={"direction": direction, "override": "award-side rules under test", "slots": slot}).json()
        award = c.post("/awards", headers={**agg, "Idempotency-Key": "rt-a1"},
                       json={"offer_id": offer["id"], "slots": slot}).json()
        assert award["status"] == "accepted", award
        d = c.post("/dispatches", headers={**agg, "Idempotency-Key": "rt-d1"},
                   json={"award_id": award["id"], "type": "delta", "start": iso(s1), "end": iso(s1 + SLOT),
                         "value_kw": kw}).json()
        assert d["status"] == "accepted", d
    assert rt.now() < s1, "too slow: the dispatch window began before it was placed"
    # from now on every plan keeps the award deliverable
    simsite.call(rt.replan())
    sched, vpp = rt.controller.plan.schedule, rt.controller.plan.problem.vpp
    k = int((s1 - sched.start).total_seconds() // sched.slot_s)
    assert vpp is not None, "the plan ignores the award"
    held = vpp.award_up_w if direction == "up" else vpp.award_down_w
    assert held[k] == pytest.approx(kw * 1000), vpp
    # wait for the window, then three dispatch cycles (3 wall s at 60×)
    until = s1 + timedelta(minutes=3)
    wait_until_sync(lambda: rt.now() >= until, (until - rt.now()).total_seconds() + 60, clock=rt, interval_s=0.2)
    dec = rt.controller.decisions["bat1"]
    assert dec.source == "dispatch", dec
    plan_w = rt.app.state.book.plan_w(rt.now()) or 0.0
    assert dec.setpoint_w == pytest.approx(plan_w + sign * kw * 1000, abs=500), (dec, plan_w)
    wait_until_sync(lambda: abs(rt.last_good["bat1"].values["power_w"] - dec.setpoint_w) < 0.1 * kw * 1000, 5.0,
                    interval_s=0.2, what=f"bat1 power near the setpoint {dec.setpoint_w} W")
    bat = views.battery(rt.services)
    assert bat["soc_pct"] > bat["floor_pct"], bat
    # the settlement job (not a GET) records the dispatch's performance once its slot is over
    ledger = rt.app.state.ledger
    assert ledger.query(kinds=["performance"], ref=d["id"]) == []
    wait_until_sync(lambda: ledger.query(kinds=["performance"], ref=d["id"]), 120.0, interval_s=0.5,
                    what="the settlement job's performance record")
    assert rt.now() >= s1 + SLOT
    with httpx.Client(base_url=simsite.url + "api/v1", timeout=30) as c:
        perf = c.get(f"/dispatches/{d['id']}/performance", headers=agg)
        assert perf.status_code == 200, perf.text
        assert perf.json()["recorded"] is True, perf.json()
    wait_until_sync(lambda: rt.now() >= s1 + SLOT + timedelta(minutes=5), 30.0, clock=rt, interval_s=0.2)
    assert len(ledger.query(kinds=["performance"], ref=d["id"])) == 1  # later runs write nothing


def test_simulated_time_resumes_where_the_ledger_ends(tmp_path):
    """A restarted accelerated run on the same data dir continues from its ledger's newest
    record (ahead of the wall clock), not from the wall clock: its awards stay in the past."""
    from vpp.commands.demo import simulated_runtime
    from vpp.config import read_config
    from vpp.market.ledger import Ledger
    from vpp.runtime import resume_at, with_data_dir

    from .sites import EXAMPLE

    cfg = with_data_dir(read_config(EXAMPLE), tmp_path)
    wall = datetime.now(timezone.utc)
    assert abs((resume_at(cfg) - wall).total_seconds()) < 5  # fresh data dir: now
    assert abs((simulated_runtime(cfg).now() - wall).total_seconds()) < 60  # (60×: a second is a minute)
    ahead = wall + timedelta(hours=30)
    led = Ledger.open(cfg.api.ledger_path, clock=lambda: ahead)
    led.audit("op", "test")
    led.close()
    assert resume_at(cfg) == ahead
    assert abs((simulated_runtime(cfg, speed=1.0).now() - ahead).total_seconds()) < 5  # what `vpp demo` starts at
    assert resume_at(cfg, wall) == wall
