from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.testkit.sites import make_site, overridden
from vpp.config import Ratings, Reserve
from vpp.control.reserve import (
    ReserveState, ReserveStateMachine, StormMode, base_floor, capacity_shares, capped_floor_warnings,
    floor_sizing, floor_trajectory, grid_outage,
)

T0 = datetime(2026, 11, 22, 0, 0, tzinfo=timezone.utc)


def machine(**kw):
    args = dict(capacity_wh=10_000, max_charge_w=5_000, max_discharge_w=5_000, hysteresis=0.02, step_s=60)
    args.update(kw)
    return ReserveStateMachine(**args)


def bat(capacity_wh, soc_min=0.05, soc_max=0.95, eta=0.95):
    return Ratings(capacity_wh=capacity_wh, max_charge_w=1, max_discharge_w=1, soc_min=soc_min, soc_max=soc_max,
                   discharge_efficiency=eta)


def test_base_floor_takes_the_larger_requirement():
    assert base_floor(Reserve(floor_pct=30, critical_load_w=0), bat(100_000)) == pytest.approx(0.30)
    # 400 W × 24 h in usable energy of 20 kWh: 0.05 + 9.6 kWh / (20 kWh × 0.95)
    no_standby = dict(inverter_standby_w=0)
    assert base_floor(Reserve(floor_pct=10, critical_load_w=400, autonomy_h=24, **no_standby),
                      bat(20_000)) == pytest.approx(0.05 + 9600 / 19000)
    # of 15 kWh it exceeds soc_max: capped, and floor_sizing says so
    r = Reserve(floor_pct=30, critical_load_w=400, autonomy_h=72)
    assert base_floor(r, bat(15_000, soc_max=0.95)) == 0.95
    f = floor_sizing(r, bat(15_000, soc_max=0.95))
    assert f.capped and f.required > 1.0


def test_floor_is_sized_in_usable_energy():
    """The worked example: 400 W × 72 h on 100 kWh, soc_min 5 %, η 0.95. The old rule gave
    28.8 %, i.e. (28.8 − 5) % × 100 kWh × 0.95 ≈ 22.6 kWh ≈ 56 h."""
    r = Reserve(floor_pct=0, critical_load_w=400, autonomy_h=72, inverter_standby_w=0)
    f = base_floor(r, bat(100_000))
    assert f == pytest.approx(0.05 + 28_800 / 95_000)  # 35.3 %
    assert (f - 0.05) * 100_000 * 0.95 / 400 == pytest.approx(72.0)
    # the inverter's standby draw is carried too: (f − soc_min) × C × η − standby × 72 h = 28.8 kWh
    r20 = Reserve(floor_pct=0, critical_load_w=400, autonomy_h=72, inverter_standby_w=20)
    f20 = base_floor(r20, bat(100_000))
    assert (f20 - 0.05) * 100_000 * 0.95 - 20 * 72 == pytest.approx(28_800)


def test_critical_load_is_shared_across_batteries_by_capacity():
    """Two batteries carry one site load between them, not one each."""
    c = make_site("two-batteries")
    bats = c.devices_of("battery")
    shares = capacity_shares(bats)
    assert sum(shares.values()) == pytest.approx(1.0)
    r = Reserve(floor_pct=0, critical_load_w=400, autonomy_h=24, inverter_standby_w=0)
    usable = sum((base_floor(r, b.ratings, shares[b.id]) - b.ratings.soc_min) * b.ratings.capacity_wh
                 * b.ratings.discharge_efficiency for b in bats)
    assert usable == pytest.approx(400 * 24)
    assert capped_floor_warnings(overridden(c, reserve={"critical_load_w": 400, "autonomy_h": 24})) == []
    big = overridden(c, reserve={"critical_load_w": 5000, "autonomy_h": 72})
    assert len(capped_floor_warnings(big)) == 2 and "capped at soc_max" in capped_floor_warnings(big)[0]


def test_storm_trajectory_reaches_target_by_deadline():
    storm = StormMode(lead=timedelta(hours=4))
    deadline = T0 + timedelta(hours=6)
    storm.on(T0, target=0.9, deadline=deadline)
    times = [T0 + timedelta(hours=h) for h in range(9)]
    f = floor_trajectory(0.3, times, storm)
    assert f[:3].tolist() == pytest.approx([0.3, 0.3, 0.3])  # ramp starts 4 h before
    assert f[4] == pytest.approx(0.6)
    assert f[6:].tolist() == pytest.approx([0.9] * 3)
    assert np.all(np.diff(f) >= 0)
    storm.off()
    assert floor_trajectory(0.3, times, storm).tolist() == [0.3] * 9


def test_storm_activated_late_ramps_from_activation():
    storm = StormMode(lead=timedelta(hours=12))
    storm.on(T0, target=0.8, deadline=T0 + timedelta(hours=2))
    f = floor_trajectory(0.2, [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)], storm)
    assert f.tolist() == pytest.approx([0.2, 0.5, 0.8])
    storm.on(T0, target=0.8, deadline=T0)  # deadline now: immediately at target
    assert floor_trajectory(0.2, [T0], storm).tolist() == pytest.approx([0.8])


def test_hysteresis_cycle_with_reasons():
    m = machine()
    assert m.step(T0, 0.50, 0.30).state is ReserveState.NORMAL
    lim = m.step(T0, 0.30, 0.30)
    assert lim.state is ReserveState.HOLD and lim.max_w == 0.0 and lim.min_w == -5000
    assert m.step(T0, 0.31, 0.30).state is ReserveState.HOLD  # inside the band: stays
    lim = m.step(T0, 0.27, 0.30)
    assert lim.state is ReserveState.FORCE_CHARGE and lim.max_w < 0
    assert m.step(T0, 0.29, 0.30).state is ReserveState.FORCE_CHARGE
    assert m.step(T0, 0.30, 0.30).state is ReserveState.HOLD
    assert m.step(T0, 0.32, 0.30).state is ReserveState.NORMAL
    assert [(t.old, t.new) for t in m.history] == [
        (ReserveState.NORMAL, ReserveState.HOLD), (ReserveState.HOLD, ReserveState.FORCE_CHARGE),
        (ReserveState.FORCE_CHARGE, ReserveState.HOLD), (ReserveState.HOLD, ReserveState.NORMAL)]
    assert all(t.reason for t in m.history)


def test_normal_discharge_cap_cannot_cross_floor_in_one_step():
    m = machine()
    lim = m.step(T0, 0.301, 0.30)  # 10 Wh above the floor
    assert lim.state is ReserveState.NORMAL
    assert lim.max_w * 60 / 3600 <= 10 * 0.95 + 1e-9
    assert "capped" in lim.reason


def test_outage_unlocks_and_grid_return_relocks():
    m = machine()
    m.step(T0, 0.30, 0.30)
    lim = m.step(T0, 0.30, 0.30, grid_ok=False)
    assert lim.state is ReserveState.OUTAGE and lim.max_w == 5000
    assert m.step(T0, 0.10, 0.30, grid_ok=False).max_w == 5000
    lim = m.step(T0, 0.10, 0.30, grid_ok=True)
    assert lim.state is ReserveState.FORCE_CHARGE and lim.max_w < 0
    assert "grid restored" in m.history[-1].reason


def test_force_charge_power_bounds():
    m = machine(force_charge_h=1.0)
    lim = m.step(T0, 0.0, 0.95)
    assert lim.max_w == -5000  # far below: full rate
    m2 = machine()
    lim2 = m2.step(T0, 0.279, 0.30)
    assert -5000 < lim2.max_w <= -500  # near: at least 10 % of rating


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 0.95), st.booleans()), min_size=1, max_size=60))
def test_never_discharges_below_floor_without_outage(steps):
    m = machine()
    for i, (soc, floor, grid_ok) in enumerate(steps):
        lim = m.step(T0 + timedelta(minutes=i), soc, floor, grid_ok)
        assert lim.min_w <= lim.max_w
        if grid_ok:
            assert lim.state is not ReserveState.OUTAGE
            if soc <= floor:
                assert lim.max_w <= 0.0
            # the energy one step can take out never crosses the floor
            assert max(lim.max_w, 0.0) * m.step_s / 3600 <= max(soc - floor, 0) * m.capacity_wh + 1e-6
            if soc < floor - m.hysteresis:
                assert lim.max_w < 0
        else:
            assert lim.state is ReserveState.OUTAGE


def test_grid_outage_detection():
    assert grid_outage(0.0, 0.0)
    assert not grid_outage(101.0, 0.0)  # voltage alive: a meter fault, not an outage
    assert not grid_outage(101.0, 50.0)
    assert not grid_outage(None, None, available=False)
    assert not grid_outage(float("nan"), 50.0)
    # Japanese 100 V / 200 V grids are healthy even when the meter's rating says 230 V
    for v, hz in ((94.0, 50.0), (101.0, 60.0), (202.0, 50.0)):
        assert not grid_outage(v, hz) and not grid_outage(v, hz, nominal_v=230.0)
    # one quantity alone, or an implausible value, is never an outage
    assert not grid_outage(30.0, None) and not grid_outage(None, 0.0)
    assert not grid_outage(10.1, 50.0) and not grid_outage(101.0, 500.0) and not grid_outage(0.0, 50.0)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 0.02), st.floats(0.0, 120.0), st.floats(0.8, 1.0))
def test_a_lease_near_the_floor_cannot_overdraw_when_renewals_stop(above, age_s, eff):
    """SoC just above the floor, 180 s leases written every 60 s: if renewals stop after a
    write at the cap, discharging until the lease reverts (from the reading's time on)
    keeps the SoC at or above the floor."""
    floor = 0.30
    m = machine(step_s=60, lease_s=180, discharge_efficiency=eff)
    soc = floor + 0.02 + above  # NORMAL: release above floor + hysteresis
    lim = m.step(T0, soc, floor, True, age_s=age_s)
    assert lim.state is ReserveState.NORMAL
    drawn_wh = max(lim.max_w, 0.0) * (age_s + 180) / 3600 / eff  # stored energy out
    assert soc - drawn_wh / m.capacity_wh >= floor - 1e-9


def test_lease_cap_is_smaller_than_the_one_step_cap():
    one_step = machine(step_s=60).step(T0, 0.305, 0.30).max_w
    leased = machine(step_s=60, lease_s=180).step(T0, 0.305, 0.30).max_w
    aged = machine(step_s=60, lease_s=180).step(T0, 0.305, 0.30, age_s=20).max_w
    assert leased == pytest.approx(one_step / 3)
    assert aged == pytest.approx(one_step * 60 / 200)
    assert machine(step_s=60, lease_s=180).step(T0, 0.305, 0.30, age_s=-30).max_w == pytest.approx(leased)
