"""Physics functions: scalar/array/Series behaviour, conservation and limits."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from simulators import physics

SENDAI = dict(latitude=38.27, longitude=140.87, altitude=40.0)


def _poa(ts: str, tilt: float = 30.0, azimuth: float = 180.0) -> float:
    times = pd.DatetimeIndex([pd.Timestamp(ts)])
    return float(physics.clearsky_poa(times, tilt=tilt, azimuth=azimuth, **SENDAI).iloc[0])


def test_pv_zero_at_night_in_sendai():
    # 00:00 JST = 15:00 UTC the day before
    assert _poa("2026-06-20T15:00Z") == 0.0
    assert physics.pv_ac_power(_poa("2026-06-20T15:00Z"), kwp=5.0) == 0.0


def test_pv_plausible_at_noon_in_sendai():
    # solar noon in Sendai is ~11:35 JST (02:35 UTC)
    summer = _poa("2026-06-21T02:35Z")
    winter = _poa("2026-12-21T02:35Z")
    assert 850 < summer < 1150, summer
    assert 500 < winter < 1000, winter
    p = physics.pv_ac_power(summer, kwp=5.0, losses=0.14)
    assert 3500 < p < 5000, p  # ~0.7-1.0 of nameplate after losses


def test_pv_clipping_limit_and_clouds_vectorised():
    poa = np.array([0.0, 500.0, 1000.0, 1000.0])
    p = physics.pv_ac_power(poa, kwp=10.0, clear_sky_index=np.array([1, 1, 1, 0.5]),
                            losses=0.0, rating_w=8000.0, limit_w=np.array([9e9, 9e9, 9e9, 3000]))
    assert isinstance(p, np.ndarray)
    np.testing.assert_allclose(p, [0.0, 5000.0, 8000.0, 3000.0])
    s = physics.pv_ac_power(pd.Series([1000.0, 0.0], index=["a", "b"]), kwp=1.0, losses=0.1)
    assert isinstance(s, pd.Series) and list(s.index) == ["a", "b"]
    assert s["a"] == pytest.approx(900.0)
    assert isinstance(physics.pv_ac_power(800.0, kwp=1.0), float)


def test_cell_temperature_rises_with_irradiance_and_lowers_pv_power():
    t = physics.cell_temperature(np.array([0.0, 500.0, 1000.0]), 20.0, 1.0)
    assert t[0] == pytest.approx(20.0) and 20.0 < t[1] < t[2] < 70.0
    hot = physics.pv_ac_power(1000.0, kwp=1.0, losses=0.0, temp_cell_c=float(t[2]))
    assert hot < 1000.0 and hot == pytest.approx(1000.0 * (1 - 0.004 * (t[2] - 25)))


def test_battery_energy_conserved_with_efficiencies():
    cap, eta_c, eta_d = 10_000.0, 0.9, 0.8
    soc, dt = 0.5, 60.0
    # charge 2 kW for 30 min: stored energy = 2 kW * 0.5 h * 0.9 = 900 Wh
    for _ in range(30):
        p, soc = physics.battery_step(soc, -2000.0, dt, cap, 5000, 5000, 0.0, 1.0, eta_c, eta_d)
        assert p == -2000.0
    assert soc == pytest.approx(0.5 + 900 / cap)
    # discharge 1 kW AC for 30 min draws 500 / 0.8 = 625 Wh from the cells
    for _ in range(30):
        p, soc = physics.battery_step(soc, 1000.0, dt, cap, 5000, 5000, 0.0, 1.0, eta_c, eta_d)
    assert soc == pytest.approx(0.5 + (900 - 625) / cap)


def test_battery_respects_power_and_soc_limits_vectorised():
    soc = np.array([0.5, 0.5, 0.101, 0.899])
    sp = np.array([9000.0, -9000.0, 5000.0, -5000.0])
    p, new = physics.battery_step(soc, sp, 3600.0, 10_000.0, 4000.0, 3000.0, 0.1, 0.9, 1.0, 1.0)
    np.testing.assert_allclose(p[:2], [3000.0, -4000.0])
    # the last two would cross the SoC limits: power shrinks to exactly reach them
    np.testing.assert_allclose(new[2:], [0.1, 0.9])
    assert 0 < p[2] < 5000 and -5000 < p[3] < 0
    # at the limit nothing more flows
    for _ in range(3):
        pp, s = physics.battery_step(0.1, 5000.0, 1.0, 10_000.0, 4000.0, 3000.0, 0.1, 0.9)
        assert pp == 0.0 and s == pytest.approx(0.1)


def test_setpoint_reverts_to_idle_after_timeout():
    ages = np.array([0.0, 59.9, 60.0, 1e6])
    np.testing.assert_allclose(physics.effective_setpoint(-2000.0 + 0 * ages, ages, 60.0),
                               [-2000, -2000, 0, 0])
    assert physics.effective_setpoint(1500.0, 1e9, 0.0) == 1500.0  # no timeout
    assert physics.effective_setpoint(1500.0, 1e9, np.nan) == 1500.0


def test_ev_charges_until_need_met_then_stops():
    need, delivered, dt = 3000.0, 0.0, 60.0
    powers = []
    for _ in range(120):
        p = physics.ev_charge_power(16.0, 230.0, 1, 7400.0, need - delivered, dt, 6.0)
        delivered += p * dt / 3600.0
        powers.append(p)
    assert delivered == pytest.approx(need)
    assert powers[0] == pytest.approx(16 * 230)
    assert powers[-1] == 0.0
    assert physics.ev_charge_power(32.0, 230.0, 3, 11000.0, 1e5) == 11000.0  # car limit
    assert physics.ev_charge_power(5.0, 230.0, 1, 7400.0, 1e5, 1.0, 6.0) == 0.0  # below 6 A


def test_iec61851_states():
    s = physics.iec61851_state(np.array([False, True, True, True]),
                               np.array([False, False, True, True]),
                               np.array([False, False, False, True]))
    np.testing.assert_array_equal(s, [1, 2, 3, 6])


def test_grid_power_sign_convention():
    # 1 kW load + 7 kW EV - 5 kW PV - 2 kW battery discharge = 1 kW import
    assert physics.grid_power(1000.0, 5000.0, 2000.0, 7000.0) == 1000.0
    # charging the battery raises import; surplus PV exports (< 0)
    assert physics.grid_power(500.0, 3000.0, -1000.0) == -1500.0
    g = physics.grid_power(np.array([1.0, 2.0]), np.array([3.0, 0.0]))
    np.testing.assert_allclose(g, [-2.0, 2.0])


def test_load_profile_daily_shape_weekend_and_seeded_noise():
    hours = np.arange(0, 24, 0.25)
    wd = physics.load_profile(hours, False, 600.0)
    we = physics.load_profile(hours, True, 600.0)
    assert wd.mean() == pytest.approx(600.0, rel=0.1)
    assert wd[hours == 19][0] > 2 * wd[hours == 3][0]  # evening peak above the night
    assert not np.allclose(wd, we)
    fac = physics.load_profile(hours, False, 10_000.0, kind="facility")
    assert fac[hours == 11][0] > 3 * fac[hours == 2][0]  # facility busy by day
    minutes = np.arange(96) * 15
    a = physics.load_profile(hours, False, 600.0, seed=1, minute_index=minutes)
    b = physics.load_profile(hours, False, 600.0, seed=1, minute_index=minutes)
    c = physics.load_profile(hours, False, 600.0, seed=2, minute_index=minutes)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.all(np.abs(a / wd - 1) <= 0.15 + 1e-12)


def test_clock_manual_and_running():
    from simulators.clock import SimClock

    t0 = datetime(2026, 6, 21, tzinfo=timezone.utc)
    c = SimClock(t0, speed=0)
    assert c.now() == t0 and c.now().tzinfo is not None
    c.advance(90)
    assert (c.now() - t0).total_seconds() == 90
    with pytest.raises(ValueError):
        c.advance(-1)
    fast = SimClock(t0, speed=1000)
    assert fast.now() >= t0


async def test_clock_sleep_manual_waits_for_advance():
    import asyncio

    from simulators.clock import SimClock

    c = SimClock(datetime(2026, 1, 1, tzinfo=timezone.utc), speed=0)
    task = asyncio.create_task(c.sleep(10))
    await asyncio.sleep(0.03)
    assert not task.done()
    c.advance(10)
    await asyncio.wait_for(task, 1.0)


def test_battery_soc_never_leaves_limits_property():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=200, deadline=None)
    @given(st.floats(0.1, 0.9), st.lists(st.tuples(st.floats(-1e5, 1e5), st.floats(0.0, 7200.0)),
                                         min_size=1, max_size=20))
    def check(soc, steps):
        for sp, dt in steps:
            p, new = physics.battery_step(soc, sp, dt, 10_000.0, 4000.0, 3000.0, 0.1, 0.9, 0.92, 0.9)
            assert 0.1 - 1e-9 <= new <= 0.9 + 1e-9
            assert -4000.0 - 1e-9 <= p <= 3000.0 + 1e-9
            # the direction of SoC change follows the sign of power
            assert (new - soc) * p <= 1e-12
            soc = new

    check()
