"""An accepted VPP award the site can no longer keep (SoC drained after the award): the plan
job still produces a validated plan that holds the floor, the controller keeps planning (no
fallback) and alarm ``award`` names the slots and kW, until a later plan keeps it again."""
from datetime import timedelta

import numpy as np
import pytest

import optimizer
from vpp.control.alarms import AWARD_KEY, award_at_risk_reason
from vpp.control.loop import Controller

from .test_loop import T0, Clock, Table, cfg, set_readings

AWARD_W = 20_000.0  # community centre: 100 kWh / 50 kW battery, floor ≈ 37 % (400 W × 72 h usable)


def commitments(start, horizon):
    up = np.zeros(horizon.n)
    up[:2] = AWARD_W  # the first hour of the plan
    return optimizer.VppCommitments(award_up_w=up, duration_s=3600.0)


def test_award_at_risk_alarm_raised_then_cleared():
    ctl = Controller(cfg(), fleet=Table(), clock=Clock(T0), commitments_source=commitments)
    set_readings(ctl, soc=0.9)
    plan = ctl.plan_job()
    assert plan is not None and not ctl.alarms.is_active(AWARD_KEY)
    # a heavy load drained the battery to just above the floor after the award was accepted
    ctl.clock.t = T0 + timedelta(minutes=5)
    soc = ctl.base_floor(ctl.batteries[0]) + 0.01
    set_readings(ctl, soc=soc)
    plan = ctl.plan_job()
    assert plan is not None, ctl.alarms.active()
    assert not ctl.alarms.is_active("plan")
    s = plan.schedule
    assert s.solver.status == "Optimal" and s.solver.validated, s.warnings
    assert np.all(s.soc["bat1"] >= s.floor["bat1"] - 1e-6)
    short = s.award_shortfall_up_w
    # physics: 1 % of 100 kWh above the floor at the start of slot 0, η_d 0.95 (config default)
    eta = ctl.batteries[0].ratings.discharge_efficiency
    assert short[0] == pytest.approx(AWARD_W - eta * 100_000 * (soc - s.floor["bat1"][0]), abs=1.0)
    assert short[1] == pytest.approx(0.0, abs=1e-6)  # 30 min of 50 kW charging refills it
    a = ctl.alarms.get(AWARD_KEY)
    assert a is not None and a.severity == "warning"
    assert "award at risk" in a.reason and "slot 0 (06-21 12:00)" in a.reason  # JST slot start
    assert f"{short[0] / 1000:.2f} kW" in a.reason
    assert ctl.decide()[0].source == "plan"  # the controller keeps using the plan, no fallback
    assert not ctl.alarms.is_active("fallback")
    # charged again: the next plan keeps the award, the alarm clears
    ctl.clock.t = T0 + timedelta(minutes=10)
    set_readings(ctl, soc=0.8)
    plan = ctl.plan_job()
    assert plan is not None and not plan.schedule.award_at_risk()
    assert not ctl.alarms.is_active(AWARD_KEY)
    cleared = [h for h in ctl.alarms.history() if h.key == AWARD_KEY]
    assert len(cleared) == 1 and cleared[0].clear_reason == "plan keeps every accepted award"


def test_award_reason_lists_sides_and_truncates():
    from datetime import datetime, timezone

    start = datetime(2026, 6, 21, 0, 0, tzinfo=timezone.utc)
    risk = [(t, 1500.0 * (t % 2), 2500.0) for t in range(8)]
    r = award_at_risk_reason(risk, start, 1800, "Asia/Tokyo", max_slots=3)
    assert "in 8 slots" in r and "up to 1.50 kW up, 2.50 kW down short" in r
    assert "slot 0 (06-21 09:00) down 2.50 kW short" in r
    assert "slot 1 (06-21 09:30) up 1.50 kW short, down 2.50 kW short" in r
    assert "slot 3" not in r and "and 5 more slots" in r


def test_fleet_planner_plans_an_undeliverable_award_and_raises_the_alarm():
    """A town on the fleet planner whose award exceeds what its homes can hold (10 MW in the
    second slot): the plan is validated and used, every home above its floor stays there,
    and the alarm names the slot."""
    from .test_fleet_planner import T0 as T_TOWN, Table as SnapTable, town
    from drivers.protocols import DeviceKind, Snapshot

    c = town(20)
    assert c.optimiser.planner == "fleet"

    def big(start, horizon):
        up = np.zeros(horizon.n)
        up[1] = 10_000_000.0
        return optimizer.VppCommitments(award_up_w=up, duration_s=3600.0)

    ts = T_TOWN - timedelta(seconds=5)
    socs = {b.id: 0.4 + 0.02 * i for i, b in enumerate(c.devices_of("battery"))}
    snaps = {b: Snapshot(b, DeviceKind.BATTERY, ts, {"soc": s, "power_w": 0.0}) for b, s in socs.items()}
    snaps["feeder"] = Snapshot("feeder", DeviceKind.METER, ts, {"power_w": 20_000.0, "voltage_v": 202.0,
                                                                "frequency_hz": 50.0})
    ctl = Controller(c, fleet=SnapTable(snaps), clock=Clock(T_TOWN), commitments_source=big)
    plan = ctl.plan_job()
    assert plan is not None, ctl.alarms.active()
    s = plan.schedule
    assert s.solver.status == "Optimal" and s.solver.validated, s.warnings
    assert [t for t, _, _ in s.award_at_risk()] == [1]
    assert 9_000_000 < s.award_shortfall_up_w[1] <= 10_000_000
    for b in socs:
        assert np.all(s.soc[b] >= s.floor[b] - 1e-6)
    a = ctl.alarms.get(AWARD_KEY)
    assert a is not None and "slot 1 (" in a.reason
