from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vpp.config import Reserve, parse_config
from vpp.market.flexibility import BatteryFlexibility, battery_sustained_power, reserve_floor


def test_reserve_floor_takes_the_larger_rule_and_caps_at_soc_max():
    assert reserve_floor(Reserve(floor_pct=30, critical_load_w=400, autonomy_h=72), 100_000) == pytest.approx(0.30)
    # 1 kW × 72 h / 100 kWh = 0.72
    assert reserve_floor(Reserve(floor_pct=30, critical_load_w=1000, autonomy_h=72), 100_000) == pytest.approx(0.72)
    assert reserve_floor(Reserve(floor_pct=99), 100_000, soc_max=0.95) == pytest.approx(0.95)


def test_sustained_power_is_energy_above_floor_over_window_capped_by_rating():
    # (0.6 − 0.3) × 100 kWh × 0.95 / 2 h = 14.25 kW up; (0.95 − 0.6) × 100 kWh / 0.95 / 2 h = 18.42 kW down
    up, down = battery_sustained_power(0.6, 0.3, 0.95, 100_000, 50_000, 50_000, 2.0)
    assert up == pytest.approx(14_250) and down == pytest.approx(35_000 / 0.95 / 2)
    up, _ = battery_sustained_power(0.6, 0.3, 0.95, 100_000, 10_000, 50_000, 0.5)
    assert up == 10_000  # rating binds for a short window
    assert battery_sustained_power(0.2, 0.3, 0.95, 100_000, 50_000, 50_000, 1.0)[0] == 0.0
    with pytest.raises(ValueError):
        battery_sustained_power(0.6, 0.3, 0.95, 100_000, 1, 1, 0.0)


def test_battery_flexibility_sums_batteries_per_slot():
    cfg = parse_config({
        "site": {"name": "x", "latitude": 38.3, "longitude": 140.9},
        "grid": {"import_limit_w": 1, "export_limit_w": 0},
        "tariff": {"periods": [{"name": "f", "start": "00:00", "end": "00:00", "buy_per_kwh": 1}]},
        "devices": [{"id": f"b{i}", "kind": "battery", "register_map": "m",
                     "ratings": {"capacity_wh": 10_000, "max_charge_w": 5_000, "max_discharge_w": 5_000}}
                    for i in (1, 2)],
        "reserve": {"floor_pct": 50},
    })
    soc = {"b1": 0.9, "b2": 0.5}
    t0 = datetime(2026, 11, 25, 5, tzinfo=UTC)
    slots = BatteryFlexibility(cfg, soc.__getitem__)(t0, t0 + timedelta(hours=1))
    assert [s.start for s in slots] == [t0, t0 + timedelta(minutes=30)]
    # b1: (0.9 − 0.5) × 10 kWh × 0.95 / 1 h = 3.8 kW; b2 at the floor: 0
    assert all(s.up_w == pytest.approx(3_800) for s in slots)
    # down: b1 (0.95 − 0.9) × 10 kWh / 0.95 = 0.526 kW; b2 4.5 kWh / 0.95 = 4.74 kW
    assert slots[0].down_w == pytest.approx(500 / 0.95 + 4_500 / 0.95)
