from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.market.conftest import planned_controller
from tests.testkit.sites import make_site
from vpp.config import Ratings, Reserve
from vpp.control.reserve import base_floor as reserve_floor
from vpp.market.flexibility import BatteryFlexibility, battery_sustained_power


def test_reserve_floor_takes_the_larger_rule_and_caps_at_soc_max():
    r100 = Ratings(capacity_wh=100_000, max_charge_w=1, max_discharge_w=1, soc_min=0.05, soc_max=0.95)
    assert reserve_floor(Reserve(floor_pct=30, critical_load_w=0, autonomy_h=72), r100) == pytest.approx(0.30)
    # 1 kW × 72 h in usable energy: 0.05 + 72 kWh / (100 kWh × 0.95)
    assert reserve_floor(Reserve(floor_pct=30, critical_load_w=1000, autonomy_h=72, inverter_standby_w=0),
                         r100) == pytest.approx(0.05 + 72 / 95)
    assert reserve_floor(Reserve(floor_pct=99), r100) == pytest.approx(0.95)


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
    cfg = _two_batteries()
    soc = {"b1": 0.9, "b2": 0.5}
    t0 = datetime(2026, 11, 25, 5, tzinfo=UTC)
    slots = BatteryFlexibility(cfg, soc.__getitem__)(t0, t0 + timedelta(hours=1))
    assert [s.start for s in slots] == [t0, t0 + timedelta(minutes=30)]
    # b1: (0.9 − 0.5) × 10 kWh × 0.95 / 1 h = 3.8 kW; b2 at the floor: 0
    assert all(s.up_w == pytest.approx(3_800) for s in slots)
    # down: b1 (0.95 − 0.9) × 10 kWh / 0.95 = 0.526 kW; b2 4.5 kWh / 0.95 = 4.74 kW
    assert slots[0].down_w == pytest.approx(500 / 0.95 + 4_500 / 0.95)


@pytest.mark.parametrize("duration_s", [1800, 7200])
def test_plan_flexibility_is_sustainable_for_the_product_duration(duration_s):
    from vpp.market.flex_service import PlanFlexibility

    ctl, clock, _ = planned_controller(duration_s)
    t0 = clock.t
    pf = PlanFlexibility(ctl, BatteryFlexibility(ctl.config, {"bat1": 0.6}.__getitem__))
    rows = pf.detail(t0, t0 + timedelta(hours=4))
    assert {r.source for r in rows} == {"plan"} and any(r.up_w > 0 for r in rows)
    for r in rows:
        # every offered kW lasts the product duration on the energy offered above the floor
        assert r.up_w * duration_s / 3600 <= r.up_wh + 1e-6
        assert r.down_w * duration_s / 3600 <= r.down_wh + 1e-6
        assert r.up_w == 0 or r.up_max_duration_s >= duration_s - 1e-6
    # never more than the energy above the 30 % floor at the plan's start: 0.3 × 20 kWh × η_d
    assert rows[0].up_wh <= 0.3 * 20_000 * 0.95 + 1e-6


def _two_batteries(duration_s: float | None = None):
    """Two 10 kWh / 5 kW batteries b1, b2 under a 50 % floor; ``duration_s`` sets
    vpp.duration_s (s; None = the config default)."""
    return make_site("two-batteries", **({"vpp": {"duration_s": duration_s}} if duration_s is not None else {}))


@pytest.mark.parametrize("duration_s", [1800, 3600, 7200, 4 * 3600])
def test_soc_flexibility_holds_each_slot_for_the_product_duration_above_the_floor(duration_s):
    """A 30-min request is sized for the product duration, not 30 min: discharging the
    offered kW for ``vpp.duration_s`` from the present SoC never takes a battery below the
    floor (b2 sits below it and offers nothing up); a window longer than the duration
    shares the energy over the window."""
    cfg = _two_batteries(duration_s)
    soc = {"b1": 0.9, "b2": 0.45}
    t0 = datetime(2026, 11, 25, 5, tzinfo=UTC)
    flex = BatteryFlexibility(cfg, soc.__getitem__)
    (slot,) = flex(t0, t0 + timedelta(minutes=30))
    h = duration_s / 3600
    # b1 alone: (0.9 − 0.5) × 10 kWh × 0.95 over the duration, at most 5 kW
    assert slot.up_w == pytest.approx(min(5_000, 4_000 * 0.95 / h))
    soc_after = 0.9 - slot.up_w * h / 0.95 / 10_000
    assert soc_after >= 0.5 - 1e-9  # the floor holds for the whole duration
    if duration_s >= 3600:
        assert slot.up_w < 5_000  # energy binds: the old 30-min sizing offered the full 5 kW
    # down: b1 (0.95 − 0.9) and b2 (0.95 − 0.45) × 10 kWh / 0.95 over the duration, ≤ 5 kW each
    assert slot.down_w == pytest.approx(min(5_000, 500 / 0.95 / h) + min(5_000, 5_000 / 0.95 / h))
    # a window longer than the duration: all slots back to back on the same energy
    long = flex(t0, t0 + timedelta(hours=8))
    assert len(long) == 16 and all(s.up_w == pytest.approx(4_000 * 0.95 / 8) for s in long)


def test_soc_flexibility_offers_nothing_on_a_battery_without_a_reading():
    cfg = _two_batteries(3600)
    t0 = datetime(2026, 11, 25, 5, tzinfo=UTC)
    (slot,) = BatteryFlexibility(cfg, {"b1": float("nan"), "b2": 0.9}.__getitem__)(t0, t0 + timedelta(minutes=30))
    assert slot.up_w == pytest.approx(4_000 * 0.95) and slot.down_w == pytest.approx(500 / 0.95)
    with pytest.raises(ValueError):
        BatteryFlexibility(cfg, {}.__getitem__, duration_s=0)
