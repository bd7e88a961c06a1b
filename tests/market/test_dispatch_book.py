"""Dispatch rules and the book's split (pure), and plan-based flexibility from a real plan."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import optimizer.flexibility as opt_flex
from tests.market.conftest import planned_controller
from vpp.market.dispatch import BatteryState, DispatchRequest, check_dispatch, split_by_headroom
from vpp.market.flex_service import PlanFlexibility
from vpp.market.flexibility import BatteryFlexibility, FlexSlot
from vpp.market.ledger import LedgerRecord

T0 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
S1 = T0 + timedelta(hours=1)


def iso(t):
    return t.isoformat().replace("+00:00", "Z")


def test_check_dispatch_storm_mode_rejects_first():
    from vpp.market.ledger import LedgerRecord
    award = LedgerRecord(1, "a", "award", T0, "x", {"direction": "up", "slots": [
        {"start": iso(S1), "accepted_w": 10000.0}]}, None, None, "h", None, None, None)
    req = DispatchRequest("a", "delta", S1, S1 + timedelta(minutes=30), 5000.0)
    flex = [FlexSlot(S1, 50000.0, 50000.0)]
    assert check_dispatch(req, award, flex, storm=False, devices_available=True).status == "accepted"
    v = check_dispatch(req, award, flex, storm=True, devices_available=True)
    assert (v.status, v.reasons) == ("rejected", ("storm_mode",))


def test_split_by_headroom_respects_ratings_and_floor():
    a = BatteryState("a", 0.9, 0.3, 1.0, 10000, 5000, 5000)   # 6 kWh above floor
    b = BatteryState("b", 0.4, 0.3, 1.0, 10000, 5000, 5000)   # 1 kWh above floor
    c = BatteryState("c", 0.3, 0.3, 1.0, 10000, 5000, 5000)   # at floor
    s = split_by_headroom(7000, [a, b, c])
    assert s["a"] == 5000 and abs(s["b"] - 2000) < 1e-9 and s["c"] == 0.0
    s = split_by_headroom(-3000, [a, b, c])
    assert abs(sum(s.values()) + 3000) < 1e-9 and s["c"] < s["b"] < s["a"] < 0


def test_check_dispatch_reasons_in_order():
    award = LedgerRecord(1, "a", "award", T0, "x", {"direction": "down", "slots": [
        {"start": iso(S1), "accepted_w": 10000.0}]}, None, None, "h", None, None, None)
    flex = [FlexSlot(S1, 0.0, 4000.0)]
    req = DispatchRequest("a", "delta", S1, S1 + timedelta(minutes=30), 12000.0)
    v = check_dispatch(req, award, flex, storm=False, devices_available=True)
    assert (v.status, v.accepted_w, v.reasons) == ("partial", 4000.0, ("outside_award", "reserve_floor"))
    assert check_dispatch(req, award, flex, storm=False, devices_available=False).reasons == ("device_unavailable",)
    # a setpoint is a delta on the plan: −3 kW against a −1 kW plan = 2 kW more charge
    sp = DispatchRequest("a", "setpoint", S1, S1 + timedelta(minutes=30), -3000.0)
    v = check_dispatch(sp, award, flex, storm=False, devices_available=True, plan_w=-1000.0)
    assert (v.status, v.accepted_w) == ("accepted", 2000.0)
    late = DispatchRequest("a", "delta", S1 + timedelta(minutes=30), S1 + timedelta(hours=1), 1000.0)
    assert check_dispatch(late, award, flex, storm=False, devices_available=True).reasons == ("outside_award",)


def test_plan_flexibility_follows_the_plan_then_falls_back():
    ctl, clock, cfg = planned_controller()
    soc = {"bat1": 0.5}
    pf = PlanFlexibility(ctl, BatteryFlexibility(cfg, soc.__getitem__))
    rows = pf.detail(T0, T0 + timedelta(hours=2))
    ref = {f.start: f for f in opt_flex.flexibility(ctl.plan.problem, ctl.plan.schedule, duration_s=cfg.vpp.duration_s)}
    assert [r.source for r in rows] == ["plan"] * 4
    for r in rows:
        f = ref[r.start]
        assert (r.up_w, r.down_w, r.up_wh) == (f.up_kw * 1000, f.down_kw * 1000, f.up_kwh * 1000)
        assert r.band_up_w <= 0.30 * r.up_w + 1e-9
    # never more energy than lies above the 30 % floor at the start (0.6 − 0.3) × 20 kWh
    assert rows[0].up_wh <= 0.3 * 20_000 + 1e-6
    assert [s.up_w for s in pf(T0, T0 + timedelta(hours=2))] == [r.up_w for r in rows]
    # beyond the plan horizon: present SoC only
    assert {r.source for r in pf.detail(T0 + timedelta(hours=12), T0 + timedelta(hours=13))} == {"soc"}
    # a stale plan is not offered against
    clock.t = T0 + timedelta(hours=1, seconds=1)
    assert {r.source for r in pf.detail(clock.t, clock.t + timedelta(hours=1))} == {"soc"}
    # storm mode: nothing available, and the FlexSlots the market uses are zero
    clock.t = T0
    ctl.storm.on(T0, 0.9, T0 + timedelta(hours=6))
    rows = pf.detail(T0, T0 + timedelta(hours=1))
    assert all(not r.available and r.reason == "storm_mode" for r in rows)
    assert all(s.up_w == 0 and s.down_w == 0 for s in pf(T0, T0 + timedelta(hours=1)))


def _booked(tmp_path, direction="up", kind="soc_target", value=0.5, storm=None):
    """A book with one accepted dispatch over [S1, S1 + 1 h) in a real ledger."""
    from vpp.market.dispatch import DispatchBook, Verdict
    from vpp.market.ledger import Ledger

    led = Ledger.open(tmp_path / "ledger.sqlite", clock=lambda: T0)
    bats = [BatteryState("a", 0.6, 0.3, 1.0, 10000, 5000, 5000)]
    state = {"storm": False} if storm is None else storm
    book = DispatchBook(lambda now: bats, storm=lambda: state["storm"])
    book.load(led)
    req = DispatchRequest("award1", kind, S1, S1 + timedelta(hours=1), value)
    d, _ = book.record(led, "agg", "k1", "create", req, Verdict("accepted", 4000.0, ()), direction=direction,
                       ref="award1")
    return book, led, d, bats, state


def test_soc_target_never_works_against_the_award(tmp_path):
    # "up" award, target above the SoC (0.6 → 0.9): would charge; it must not
    book, led, d, bats, _ = _booked(tmp_path, "up", value=0.9)
    assert all(p.setpoint_w == 0.0 for p in book(S1 + timedelta(minutes=5)).values())
    book.dispatches.clear()
    d.request = DispatchRequest("award1", "soc_target", S1, S1 + timedelta(hours=1), 0.4)
    book.dispatches[d.id] = d
    assert 0 < sum(p.setpoint_w for p in book(S1 + timedelta(minutes=5)).values()) <= 4000.0
    led.close()
    # "down" award, target below the SoC: would discharge; it must not
    book, led, d, bats, _ = _booked(tmp_path / "down", "down", value=0.2)
    assert all(p.setpoint_w == 0.0 for p in book(S1 + timedelta(minutes=5)).values())
    d.request = DispatchRequest("award1", "soc_target", S1, S1 + timedelta(hours=1), 0.9)
    assert -4000.0 <= sum(p.setpoint_w for p in book(S1 + timedelta(minutes=5)).values()) < 0
    led.close()


def test_storm_mode_suspends_a_running_dispatch_and_resumes_it_inside_its_window(tmp_path):
    from vpp.api.schemas.dispatches import DispatchOut
    from vpp.market.dispatch import DispatchBook

    book, led, d, bats, state = _booked(tmp_path, "up", kind="delta", value=2000.0)
    t = S1 + timedelta(minutes=5)
    assert book(t) and d.state(t) == "active"
    state["storm"] = True
    t += timedelta(minutes=1)
    assert book(t) == {}
    assert (d.state(t), d.suspended) == ("suspended", "storm_mode")
    out = DispatchOut.from_dispatch(d, t)
    assert (out.state, out.suspended_reason, out.status) == ("suspended", "storm_mode", "accepted")
    assert book(t + timedelta(minutes=1)) == {}  # recorded once, stays suspended
    # a restart keeps it suspended
    again = DispatchBook(lambda now: bats, storm=lambda: state["storm"])
    again.load(led)
    assert again.get(d.id).state(t) == "suspended"
    # storm over inside the window: it resumes
    state["storm"] = False
    t += timedelta(minutes=10)
    assert sum(p.setpoint_w for p in book(t).values()) == 2000.0
    assert d.state(t) == "active" and d.suspended is None and d.resumed_at == t
    acts = [r.payload["action"] for r in led.query(kinds=["dispatch"])]
    assert acts == ["create", "suspend", "resume"]
    acks = [r.payload for r in led.query(kinds=["ack"])][1:]
    assert [(a["state"], a["reasons"]) for a in acks] == [("suspended", ["storm_mode"]), ("active", ["storm_mode"])]
    # storm again, and over only after the window closed: it stays suspended, completed
    state["storm"] = True
    book(t + timedelta(minutes=1))
    state["storm"] = False
    end = S1 + timedelta(hours=1, minutes=1)
    assert book(end) == {} and d.suspended == "storm_mode" and d.state(end) == "completed"
    led.close()
