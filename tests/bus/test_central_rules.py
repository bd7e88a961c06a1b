"""The centre's pure parts: the pre-check against a town's last status, the serial planner."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from vpp.central.checks import capacity_from_status, precheck
from vpp.central.planning import PlanRequest, serial_plan_towns
from vpp.errors import ServiceError

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=timezone.utc)
STATUS = {"headroom_wh": 6000.0, "room_wh": 4000.0, "max_discharge_w": 5000.0, "max_charge_w": 4000.0,
          "floor_pct": 35.0, "config_floor_pct": 30.0}


def test_status_becomes_one_aggregate_battery_with_the_same_energies():
    cap = capacity_from_status(STATUS)
    assert cap.headroom_wh == pytest.approx(6000.0) and cap.room_wh == pytest.approx(4000.0)
    assert (cap.max_discharge_w, cap.max_charge_w, cap.config_floor_pct) == (5000.0, 4000.0, 30.0)
    assert capacity_from_status({"soc": 0.5}) is None


@pytest.mark.parametrize("kind, body, reason", [
    ("policy", {"floor_pct": 20.0}, "below_local_floor"),
    ("dispatches", {"start": "2026-12-05T09:00:00Z", "end": "2026-12-05T10:00:00Z", "setpoint_w": 6000.0},
     "out_of_range"),
    ("plans", {"start": "2026-12-05T09:00:00Z", "slot_s": 900, "battery_w": [100.0, -4500.0]}, "out_of_range"),
    ("plans", {"start": "2026-12-05T09:00:00Z", "slot_s": 900, "battery_w": "lots"}, "battery_w"),
])
def test_centre_refuses_what_the_town_would_refuse(kind, body, reason):
    with pytest.raises(ServiceError, match=reason):
        precheck("t1", kind, body, STATUS, NOW)


def test_centre_passes_acceptable_commands_and_unknown_towns():
    precheck("t1", "policy", {"floor_pct": 40.0}, STATUS, NOW)
    precheck("t1", "plans", {"start": "2026-12-05T09:00:00Z", "slot_s": 900, "battery_w": [5000.0] * 8}, STATUS, NOW)
    precheck("t9", "policy", {"floor_pct": 0.0}, None, NOW)  # nothing known: the town decides


def test_serial_planner_spreads_half_the_headroom_over_the_peak_slots_within_the_rating():
    loads = (100.0, 900.0, 800.0, 200.0, 950.0, 700.0, 100.0, 100.0)
    req = PlanRequest("t1", NOW, headroom_wh=8000.0, room_wh=0.0, max_discharge_w=3000.0, max_charge_w=0.0,
                      n_slots=8, slot_s=900, net_load_w=loads)
    plan = serial_plan_towns({"t1": req})["t1"]
    w = plan["battery_w"]
    assert plan["slot_s"] == 900 and len(w) == 8
    assert [k for k, x in enumerate(w) if x > 0] == [1, 2, 4, 5]  # the four highest loads
    assert max(w) <= 3000.0  # 4 kWh over 1 h would be 4 kW: capped at the rating
