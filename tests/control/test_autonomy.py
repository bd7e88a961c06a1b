"""Autonomy in usable energy: ``vpp reserve check``, live autonomy and load shedding."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from tests.testkit.sites import overridden
from vpp.config import read_config
from vpp.control.autonomy import LoadShedder, check_reserve, hours_served, live_autonomy, shed_order

ROOT = Path(__file__).resolve().parents[2]
CENTRE = ROOT / "deploy" / "examples" / "community-centre.yaml"
T0 = datetime(2027, 1, 12, 0, 0, tzinfo=timezone.utc)


def test_worked_example_meets_72_h_at_the_floor():
    """400 W × 72 h on 100 kWh (soc_min 5 %, η 0.95, 20 W standby): floor 36.8 %, 72 h."""
    c = read_config(CENTRE)
    res = check_reserve(c, datetime(2026, 12, 21, tzinfo=timezone.utc))
    assert res.floors["bat1"] == pytest.approx(100 * (0.05 + 420 * 72 / 95_000), abs=0.01)
    assert res.hours_no_pv == pytest.approx(72.0, abs=0.01) and res.meets_no_pv
    assert res.hours_p10_pv >= res.hours_no_pv and res.meets_p10_pv
    assert "clear-sky" in res.pv_basis


def test_undersized_battery_gets_the_floor_and_capacity_that_would_do():
    c = overridden(read_config(CENTRE), reserve={"floor_pct": 30, "critical_load_w": 1500})
    res = check_reserve(c, datetime(2026, 12, 21, tzinfo=timezone.utc))
    # 1520 W × 72 h = 109 kWh > 100 kWh × 0.9 × 0.95: no floor suffices
    assert not res.meets_no_pv and res.capped == ["bat1"] and res.floor_pct_needed is None
    assert res.capacity_kwh_needed == pytest.approx(1520 * 72 / (0.9 * 0.95) / 1000, abs=0.1)
    out = subprocess.run([sys.executable, "-m", "vpp.cli", "reserve", "check", "--config", str(CENTRE)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "without PV: 72.0 h" in out.stdout, out.stderr


def test_hours_served_counts_pv_and_the_full_battery():
    assert hours_served(4200, 10_000, 420) == pytest.approx(10.0)
    assert hours_served(4200, 10_000, 420, [1000] * 5) > 15.0


def test_shedding_in_priority_order_and_restore_on_grid():
    c = overridden(read_config(CENTRE), loads=[
        {"id": "shelter", "critical": True, "nominal_w": 400},
        {"id": "hall-hvac", "priority": 3, "nominal_w": 3000},
        {"id": "kitchen", "priority": 2, "nominal_w": 1500}])
    assert [g.id for g in shed_order(c)] == ["hall-hvac", "kitchen"]
    sh = LoadShedder(c)
    full = live_autonomy(c, {"bat1": 0.95}, T0)
    assert full.critical_hours > 78 + 72 and sh.step(T0, False, full) == {}
    mid = live_autonomy(c, {"bat1": 0.38}, T0)  # ≈ 74.6 h: below 78 h (hvac), above 72 h (kitchen)
    assert sh.step(T0, False, mid) == {"hall-hvac": False} and sh.on_groups() == ["shelter", "kitchen"]
    low = live_autonomy(c, {"bat1": 0.30}, T0)
    assert sh.step(T0 + timedelta(minutes=1), False, low) == {"kitchen": False}
    assert list(sh.shed) == ["hall-hvac", "kitchen"]
    assert sh.step(T0 + timedelta(minutes=2), True, low) == {"hall-hvac": True, "kitchen": True}
    a = live_autonomy(c, {"bat1": 0.40}, T0, ["shelter", "kitchen"])
    assert a.load_w == pytest.approx(420 + 1500) and a.until == T0 + timedelta(hours=a.hours)


def test_islanded_controller_plans_the_outage():
    """With the grid down the plan is an outage plan: every slot islanded, no cars, the
    pessimistic PV and the load carried now; the floor is released down to soc_min."""
    from tests.control.test_loop import controller
    from vpp.control.autonomy import P10_CLEAR_SKY_INDEX

    ctl = controller(soc=0.5)
    ctl.outage = True
    plan = ctl.plan_job()
    assert plan is not None, ctl.alarms.active()
    p = plan.problem
    assert p.outage is not None and p.outage.all() and not p.evs
    assert (p.load_w == 420.0).all()  # 400 W critical + 20 W standby, no load groups
    # the pessimistic PV: the clear-sky forecast (no weather provider here) × 0.15
    assert 0 < p.pv_w.max() <= P10_CLEAR_SKY_INDEX * ctl.forecast.pv_w.max() * 1.01
    s = plan.schedule
    assert np.abs(s.grid_w).max() < 1e-6
    assert min(s.soc["bat1"]) >= ctl.batteries[0].ratings.soc_min - 1e-6
