"""Flexibility per 30-min slot: the energy margin above the floor counts over the delivery
horizon only (window + product duration), within power and grid limits; a delivery of the
offered kW from the planned SoC never crosses the floor; later awards are not counted twice."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import BatteryParams, GridParams, Horizon, Problem, VppCommitments, solve, storm_floor
from optimizer.flexibility import flexibility
from optimizer.schedule import Schedule
from tests.optimizer.conftest import START


def horizon_boundaries(f, sched: Schedule, tau_s: float) -> tuple[int, int]:
    """Plan slots ``k0 … kl`` of the delivery horizon [window start, window end + τ)."""
    a = int((f.start - sched.start).total_seconds())
    ps = sched.slot_s
    k0 = a // ps
    kl = min(sched.n, -(-(a + f.duration_s + int(tau_s)) // ps)) - 1
    return k0, kl


def deliver(problem: Problem, sched: Schedule, f, tau_s: float, side: str, sub: int = 4) -> list[str]:
    """Simulate the plan plus the offered ΔkW from each of ``sub`` start instants of the
    window, held for ``tau_s`` (cut at the plan's end), with the battery's own efficiencies
    (single battery). Returns the violations found (empty = deliverable and safe)."""
    b = problem.batteries[0]
    ps, n = sched.slot_s, sched.n
    w = sched.battery_w[b.id]
    soc = np.r_[b.soc0, sched.soc[b.id]]
    floor = np.nan_to_num(sched.floor[b.id], nan=b.soc_min)
    net_exp = sched.grid_export_w - sched.grid_import_w
    dp = (f.up_kw if side == "up" else -f.down_kw) * 1000.0
    if dp == 0:
        return []
    step = ps / sub
    a = (f.start - sched.start).total_seconds()
    bad = []
    for i in range(int(round(f.duration_s / step))):
        s = a + i * step
        j = int(s // ps)
        x = soc[j] + (soc[j + 1] - soc[j]) * (s - j * ps) / ps  # planned SoC at the call
        t = s
        end = min(s + tau_s, n * ps)
        while t < end - 1e-9:
            j = int(t // ps)
            h = min(step, end - t, (j + 1) * ps - t)
            p = w[j] + dp
            if p > np.broadcast_to(b.max_discharge_w, (n,))[j] + 1e-6 or -p > np.broadcast_to(b.max_charge_w, (n,))[j] + 1e-6:
                bad.append(f"power {p:.1f} W out of limits in slot {j}")
            if net_exp[j] + dp > problem.grid.export_limit_w + 1e-6 or -(net_exp[j] + dp) > problem.grid.import_limit_w + 1e-6:
                bad.append(f"grid limit in slot {j}")
            ch, dis = max(-p, 0.0), max(p, 0.0)
            x += h / 3600 / b.capacity_wh * (b.eta_charge * ch - dis / b.eta_discharge)
            t += h
            if side == "up" and x < floor[j] - 1e-9:  # (down only raises the planned SoC)
                bad.append(f"SoC {x:.4f} below floor {floor[j]:.4f} in slot {j} (call at {s:.0f} s)")
            if x > b.soc_max + 1e-9:
                bad.append(f"SoC {x:.4f} above soc_max in slot {j}")
    return bad


def window_margin(sched: Schedule, b: BatteryParams, k0: int, kl: int) -> float:
    soc = np.r_[b.soc0, sched.soc[b.id]]
    fl = sched.floor[b.id]
    fb = np.fmax(np.r_[np.nan, fl], np.r_[fl, np.nan])
    return float((soc - fb)[k0:kl + 2].min())


def test_evening_floor_does_not_zero_earlier_up_flexibility(make_site):
    # the plan discharges to the 30 % floor every night (arbitrage); earlier windows still
    # offer up-flexibility bounded by the margin over their own delivery horizon
    p = make_site(battery={"floor": 0.3, "soc0": 0.5})
    s = solve(p)
    b = p.batteries[0]
    assert s.soc["bat1"][-1] == pytest.approx(0.3, abs=1e-6)  # touches the floor at the end
    flex = flexibility(p, s, duration_s=3600)
    assert len(flex) == 48 and all(f.duration_s == 1800 for f in flex)
    offered = 0
    for f in flex:
        k0, kl = horizon_boundaries(f, s, 3600)
        m = window_margin(s, b, k0, kl)
        assert f.up_kwh == pytest.approx(max(m, 0) * 10 * 0.95, abs=1e-6)
        assert f.up_kw <= f.up_kwh / 1.0 + 1e-9  # sustainable for the 1 h duration
        assert f.down_kw <= f.down_kwh / 1.0 + 1e-9
        assert 0 <= f.up_kw <= 5 + 5 + 1e-9 and 0 <= f.down_kw <= 10 + 1e-9
        later = s.soc["bat1"][kl + 1:]
        if f.up_kw > 0.5 and later.size and later.min() <= 0.3 + 1e-6:
            offered += 1
    # e.g. the afternoon after the PV charge: the night-time floor no longer zeroes them
    assert offered >= 5
    afternoon = [f for f in flex if f.start.hour in (16, 17, 18)]
    assert min(f.up_kw for f in afternoon) > 1.0
    assert all(f.up_sustain_s >= 3600 - 1e-6 for f in flex if f.up_kw > 0)


def test_at_the_floor_nothing_up_and_default_duration_is_the_window(make_site):
    p = make_site(battery={"floor": 0.4, "soc0": 0.4})
    s = solve(p)
    flex = flexibility(p, s)
    assert flex[0].up_kwh == pytest.approx(0.0, abs=1e-9)
    assert flex[0].up_kw == 0 and flex[0].up_sustain_s == 0
    assert flex[0].down_kw > 0 and flex[0].down_sustain_s >= 1800 - 1e-6
    assert all(f.up_kw * 0.5 <= f.up_kwh + 1e-9 and f.down_kw * 0.5 <= f.down_kwh + 1e-9 for f in flex)


@pytest.mark.parametrize("tau", [1800, 3600, 7200])
def test_solved_plan_offers_are_deliverable_from_any_call_instant(make_site, tau):
    p = make_site(battery={"floor": 0.3, "soc0": 0.6})
    s = solve(p)
    flex = flexibility(p, s, duration_s=tau)
    assert any(f.up_kw > 0 for f in flex) and any(f.down_kw > 0 for f in flex)
    for f in flex:
        assert deliver(p, s, f, tau, "up") == []
        assert deliver(p, s, f, tau, "down") == []


def test_storm_floor_raise_cuts_the_offer(make_site):
    n = 24
    base = make_site(battery={"floor": 0.3, "soc0": 0.6})
    storm = make_site(battery={"floor": storm_floor(0.3, 0.8, deadline_slot=14, ramp_slots=4, n=n), "soc0": 0.6})
    sb, ss = solve(base), solve(storm)
    fb = flexibility(base, sb, duration_s=3600)
    fs = flexibility(storm, ss, duration_s=3600)
    b = storm.batteries[0]
    for f in fs:
        k0, kl = horizon_boundaries(f, ss, 3600)
        assert f.up_kwh <= max(window_margin(ss, b, k0, kl), 0) * 10 * 0.95 + 1e-6
        assert deliver(storm, ss, f, 3600, "up") == []
        if k0 >= 14:  # after the deadline nothing below 80 % is offered
            assert f.up_kwh <= max(float(ss.soc["bat1"][k0 - 1:kl + 1].min()) - 0.8, 0) * 9.5 + 1e-6
    # same plan, the storm floor alone takes energy away
    same = flexibility(storm, dataclasses.replace(sb, floor=ss.floor), duration_s=3600)
    assert sum(f.up_kwh for f in same) < sum(f.up_kwh for f in fb) - 1.0
    assert all(x.up_kwh <= y.up_kwh + 1e-9 for x, y in zip(same, fb))


def test_later_awards_are_not_counted_twice(make_site):
    up = np.zeros(24)
    up[18:21] = 3000.0  # evening up award, 1 h each
    free = make_site(battery={"floor": 0.3, "soc0": 0.6})
    held = make_site(battery={"floor": 0.3, "soc0": 0.6}, vpp=VppCommitments(award_up_w=up, duration_s=3600))
    s = solve(held)
    with_awards = flexibility(held, s, duration_s=3600)
    without = flexibility(free, s, duration_s=3600)  # same plan, awards not known
    b = held.batteries[0]
    soc = np.r_[b.soc0, s.soc["bat1"]]
    cut = 0
    for f, g in zip(with_awards, without):
        k0, kl = horizon_boundaries(f, s, 3600)
        own_last = f.start.hour  # 1-h plan slots: the window lies in plan slot ``hour``
        assert f.up_kwh <= g.up_kwh + 1e-9
        # after delivering the offered kWh, every later award still has its energy
        for t in range(18, 21):
            if t > own_last:
                for j in (t - 1, t):
                    stored = (soc[j + 1] - 0.3) * 10_000 - f.up_kwh * 1000 / 0.95
                    assert stored >= 3000 * 1.0 / 0.95 - 1e-6, (f.start, t, j)
        cut += f.up_kwh < g.up_kwh - 1e-6
    assert cut >= 3
    # the window's own award is left to the caller (offers.py subtracts accepted awards)
    own = with_awards[2 * 20 + 1]  # 20:30, the last awarded slot: no later award
    assert own.up_kwh == pytest.approx(without[2 * 20 + 1].up_kwh)


def test_flexibility_zero_in_outage(make_site):
    out = np.zeros(24, bool)
    out[5:7] = True
    p = make_site(outage=out)
    flex = flexibility(p, solve(p))
    # windows 04:30 … 06:30 have an outage slot in their delivery horizon (window + 30 min)
    assert all(f.up_kw == 0 and f.down_kw == 0 for f in flex[9:14])
    assert any(f.up_kw > 0 or f.down_kw > 0 for f in flex[14:])
    assert flex[0].to_dict()["start"].startswith("2026-06-21T00:00")


def test_windows_sit_on_settlement_boundaries_when_the_plan_starts_at_quarter_past(make_site):
    p = make_site(n=96, slot_s=900, horizon=Horizon(START + timedelta(minutes=15), 900, 96))
    flex = flexibility(p, solve(p))
    # 24 h from 00:15: the part-window 00:15–00:30 is skipped, then 47 whole :00/:30 windows
    assert len(flex) == 47
    assert flex[0].start == START + timedelta(minutes=30)
    assert all(f.start.minute in (0, 30) and f.start.second == 0 for f in flex)


def test_bad_duration_is_refused(make_site):
    p = make_site()
    s = solve(p)
    with pytest.raises(ValueError):
        flexibility(p, s, duration_s=0)


# --------------------------------------------------------------------- random plans
def random_plan(draw) -> tuple[Problem, Schedule]:
    """A valid random single-battery plan (no solver): powers within limits, SoC by the
    model's balance, kept within [floor, soc_max] where reachable; grid limits above the plan."""
    ps = draw(st.sampled_from([900, 1800, 3600]))
    n = draw(st.integers(4, 24))
    cap = draw(st.floats(5_000, 100_000))
    pmax = draw(st.floats(1_000, 50_000))
    eta_c, eta_d = draw(st.floats(0.85, 1.0)), draw(st.floats(0.85, 1.0))
    base = draw(st.floats(0.1, 0.5))
    deadline = draw(st.integers(0, n))
    target = draw(st.floats(base, 0.9))
    floor = storm_floor(base, target, deadline, draw(st.integers(0, 4)), n)
    soc0 = draw(st.floats(0.05, 0.95))
    outage = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))) & draw(st.booleans())
    want = np.array(draw(st.lists(st.floats(-1, 1), min_size=n, max_size=n))) * pmax
    soc_min, soc_max = 0.05, 0.95
    dt = ps / 3600
    w, soc, x = np.zeros(n), np.zeros(n), soc0
    for j in range(n):
        lo_r, hi_r = x - pmax * dt / (eta_d * cap), x + pmax * eta_c * dt / cap
        lo = soc_min if outage[j] else max(floor[j], soc_min)
        y = x + dt / cap * (eta_c * max(-want[j], 0) - max(want[j], 0) / eta_d)
        y = min(max(y, lo, lo_r), soc_max, hi_r) if lo <= hi_r else hi_r
        y = max(y, lo_r)
        d = y - x
        w[j] = -d * cap / (eta_c * dt) if d >= 0 else -d * cap * eta_d / dt
        soc[j], x = y, y
    pv = np.array(draw(st.lists(st.floats(0, 20_000), min_size=n, max_size=n)))
    load = np.full(n, draw(st.floats(0, 10_000)))
    net_imp = load - pv - w
    imp, exp = np.clip(net_imp, 0, None), np.clip(-net_imp, 0, None)
    grid = GridParams(float(imp.max()) + draw(st.floats(0, 30_000)), float(exp.max()) + draw(st.floats(0, 30_000)))
    bat = BatteryParams("b", cap, pmax, pmax, eta_c, eta_d, soc_min, soc_max, soc0, floor=floor)
    prob = Problem(horizon=Horizon(START, ps, n), pv_w=pv, load_w=load, batteries=(bat,), grid=grid, outage=outage)
    eff = np.where(outage, np.nan, np.maximum(floor, soc_min))
    z = np.zeros(n)
    sched = Schedule(START, ps, n, imp, exp, pv, z, load, z, z, z, battery_w={"b": w}, soc={"b": soc},
                     floor={"b": eff})
    return prob, sched


@st.composite
def plans(draw):
    prob, sched = random_plan(draw)
    return prob, sched, draw(st.sampled_from([900, 1800, 3600, 5400]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans())
def test_offered_kw_held_for_the_duration_never_crosses_the_floor(case):
    prob, sched, tau = case
    flex = flexibility(prob, sched, duration_s=tau)
    for f in flex:
        assert f.up_kw >= 0 and f.down_kw >= 0 and f.up_kwh >= 0 and f.down_kwh >= 0
        assert f.up_kw * tau / 3600 <= f.up_kwh + 1e-9 and f.down_kw * tau / 3600 <= f.down_kwh + 1e-9
        assert deliver(prob, sched, f, tau, "up") == []
        assert deliver(prob, sched, f, tau, "down") == []


@st.composite
def plans_with_awards(draw):
    prob, sched = random_plan(draw)
    b = prob.batteries[0]
    n = sched.n
    tau_a = draw(st.sampled_from([1800.0, 3600.0]))
    soc = np.r_[b.soc0, sched.soc[b.id]]
    fl = sched.floor[b.id]
    fb = np.nan_to_num(np.fmax(np.r_[np.nan, fl], np.r_[fl, np.nan]), nan=b.soc_min)
    room = (soc - fb) * b.capacity_wh  # stored Wh per boundary (index j+1)
    frac = np.array(draw(st.lists(st.sampled_from([0.0, 0.0, 0.5, 1.0]), min_size=n, max_size=n)))
    # awards the plan can hold: at most the stored energy at t−1 and t (in AC W for τ_a)
    award = frac * np.clip(np.minimum(room[:-1], room[1:]), 0, None) * b.eta_discharge / (tau_a / 3600)
    prob = dataclasses.replace(prob, vpp=VppCommitments(award_up_w=award, duration_s=tau_a))
    return prob, sched, room, award * tau_a / 3600 / b.eta_discharge


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans_with_awards())
def test_offered_energy_leaves_later_awards_their_energy(case):
    prob, sched, room, need = case
    b = prob.batteries[0]
    ps = sched.slot_s
    for f in flexibility(prob, sched, duration_s=3600):
        a = int((f.start - sched.start).total_seconds())
        own_last = -(-(a + f.duration_s) // ps) - 1
        x = f.up_kwh * 1000 / b.eta_discharge  # stored Wh the offered energy may take
        for t in range(own_last + 1, sched.n):
            if need[t] > 0 and not prob.outage[t]:
                assert min(room[t], room[t + 1]) - x >= need[t] - 1e-6, (f.start, t)
        assert deliver(prob, sched, f, 3600, "up") == []
