"""Islanded operation in the control loop: EV chargers pause (a V2H-flagged one too, saying
why), PV is curtailed to the site's use once the battery is full, load groups are shed."""
from __future__ import annotations

from datetime import timedelta

import pytest

from drivers.protocols import DeviceKind, Snapshot
from vpp.config import OutageDetection
from vpp.control.outage import OutageDetector
from tests.testkit.sites import overridden

from .test_loop import T0, Clock, Controller, Table, cfg, set_readings


def islanded(soc: float, **overrides) -> Controller:
    c = overridden(cfg(), **overrides) if overrides else cfg()
    # one sample decides here (the debounce itself: tests/control/test_outage.py)
    ctl = Controller(c, fleet=Table(), clock=Clock(T0),
                     outage_detector=OutageDetector(OutageDetection(samples=1, confirm_s=0.0, restore_samples=1,
                                                                    restore_s=0.0)))
    ts = T0 - timedelta(seconds=2)
    set_readings(ctl, soc=soc, grid_w=0.0, bat_w=-3000.0)
    ctl.fleet.snaps["meter1"] = Snapshot("meter1", DeviceKind.METER, ts,
                                         {"power_w": 0.0, "voltage_v": 0.0, "frequency_hz": 0.0})
    ctl.fleet.snaps["pv1"] = Snapshot("pv1", DeviceKind.PV, ts, {"power_w": 5000.0})
    for ev in ("ev1", "ev2"):
        ctl.fleet.snaps[ev] = Snapshot(ev, DeviceKind.EV_CHARGER, ts,
                                       {"plugged": 1.0, "power_w": 6400.0, "current_limit_a": 32.0})
    return ctl


def test_ev_charging_stops_in_an_outage_v2h_flag_says_why():
    ctl = islanded(0.6, island={"v2h_chargers": ["ev2"]})
    ctl.decide()
    assert {k: c.amps for k, c in ctl.ev_commands.items()} == {"ev1": 0.0, "ev2": 0.0}
    assert ctl.ev_commands["ev1"].source == "outage"
    assert "V2H" in ctl.ev_commands["ev2"].reason
    assert ctl.reserve["bat1"].state.value == "outage"


def test_pv_curtailed_when_islanded_and_full():
    ctl = islanded(0.6)
    ctl.decide()
    assert ctl.pv_limits == {}
    ctl = islanded(0.95)
    ctl.decide()
    # the site uses PV + battery = 5000 − 3000 W: the rest has nowhere to go
    assert ctl.pv_limits == {"pv1": pytest.approx(2000.0)}


def test_load_groups_shed_through_the_switch_and_restored():
    switched = []
    loads = [{"id": "shelter", "critical": True, "nominal_w": 400},
             {"id": "hall", "priority": 3, "nominal_w": 4000, "shed_below_h": 1000}]
    ctl = islanded(0.6, loads=loads)
    ctl.load_switch = lambda g, on: switched.append((g, on))
    ctl.decide()
    assert switched == [("hall", False)] and ctl.alarms.is_active("shed")
    assert ctl.autonomy is not None and ctl.autonomy.load_w == pytest.approx(420.0)
    set_readings(ctl, soc=0.6)  # grid back
    ctl.decide()
    assert switched[-1] == ("hall", True) and not ctl.alarms.is_active("shed")


async def test_outage_start_replans_at_once():
    ctl = islanded(0.6)
    set_readings(ctl, soc=0.6)  # grid up
    assert ctl.plan_job() is not None and ctl.plan.problem.outage is None
    made = ctl.plan.made_at
    ctl.fleet.snaps["meter1"] = Snapshot("meter1", DeviceKind.METER, T0 - timedelta(seconds=1),
                                         {"power_w": 0.0, "voltage_v": 0.0, "frequency_hz": 0.0})
    await ctl.dispatch_job()
    assert ctl.plan.problem.outage is not None and ctl.plan.problem.outage.all()
    assert ctl.plan_grid_ok is False and ctl.plan.made_at >= made
