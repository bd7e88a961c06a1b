"""Flexibility without a plan (present SoC only): kWh is the real energy above the floor
(resp. below soc_max) and the max duration how long the offered kW can be held; under storm
mode the flexibility says why (``reason_detail``), in the service and over HTTP."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vpp.config import parse_config
from vpp.market.flex_service import PlanFlexibility, soc_details
from vpp.market.flexibility import BatteryFlexibility

T0 = datetime(2026, 11, 25, 5, tzinfo=UTC)


def two_batteries(duration_s: float, tmp_path=None, keys_path=None):
    cfg = {
        "site": {"name": "x", "latitude": 38.3, "longitude": 140.9},
        "grid": {"import_limit_w": 20_000, "export_limit_w": 10_000},
        "tariff": {"periods": [{"name": "f", "start": "00:00", "end": "00:00", "buy_per_kwh": 1}]},
        "devices": [{"id": f"b{i}", "kind": "battery", "register_map": "sunspec_storage",
                     "ratings": {"capacity_wh": 10_000, "max_charge_w": 5_000, "max_discharge_w": 5_000,
                                 "soc_max": 0.95}}
                    for i in (1, 2)],
        "reserve": {"floor_pct": 50},
        "vpp": {"duration_s": duration_s},
    }
    if tmp_path is not None:
        cfg["api"] = {"keys_path": str(keys_path or tmp_path / "keys.json"),
                      "ledger_path": str(tmp_path / "ledger.sqlite")}
    return parse_config(cfg)


def test_soc_fallback_reports_the_energy_and_how_long_the_kw_last():
    cfg = two_batteries(1800)
    soc = {"b1": 0.9, "b2": 0.45}  # b2 below its 50 % floor: nothing up from it
    flex = BatteryFlexibility(cfg, soc.__getitem__)
    rows = soc_details(flex, T0, T0 + timedelta(minutes=30))
    (r,) = rows
    # W as BatteryFlexibility sizes them: b1 holds min(5 kW, 3.8 kWh / 0.5 h) = 5 kW
    (slot,) = flex(T0, T0 + timedelta(minutes=30))
    assert (r.up_w, r.down_w) == pytest.approx((slot.up_w, slot.down_w))
    assert r.up_w == pytest.approx(5000.0)
    # up: (0.9 − 0.5) × 10 kWh × 0.95 = 3.8 kWh above the floor (not 5 kW × 0.5 h = 2.5 kWh) ...
    assert r.up_wh == pytest.approx(3800.0)
    # ... which holds 5 kW for 3.8 / 5 h = 2736 s (not 1800 s)
    assert r.up_max_duration_s == pytest.approx(3600 * 3.8 / 5)
    # down: b1 (0.95 − 0.9) and b2 (0.95 − 0.45) × 10 kWh / 0.95 below soc_max
    assert r.down_wh == pytest.approx((0.5 + 5.0) / 0.95 * 1000)
    # b1 takes 1.05 kW for exactly its 30 min; b2 5 kW for 5.26 kWh → 3789 s: the site's
    # offered down kW last as long as the first battery that fills up (b1)
    assert r.down_w == pytest.approx((0.5 / 0.95 / 0.5 + 5.0) * 1000)
    assert r.down_max_duration_s == pytest.approx(1800)
    # the kW never outlast the energy reported
    assert r.up_w * r.up_max_duration_s / 3600 <= r.up_wh + 1e-6
    assert r.down_w * r.down_max_duration_s / 3600 <= r.down_wh + 1e-6


def test_soc_fallback_over_a_long_window_and_with_nothing_to_offer():
    cfg = two_batteries(3600)
    flex = BatteryFlexibility(cfg, {"b1": 0.7, "b2": float("nan")}.__getitem__)
    rows = soc_details(flex, T0, T0 + timedelta(hours=4))
    assert len(rows) == 8
    # 0.2 × 10 kWh × 0.95 = 1.9 kWh spread over the 4-h window: 0.475 kW for 4 h
    assert all(r.up_wh == pytest.approx(1900.0) and r.up_w == pytest.approx(475.0) for r in rows)
    assert rows[0].up_max_duration_s == pytest.approx(4 * 3600)
    empty = soc_details(BatteryFlexibility(cfg, {"b1": 0.5, "b2": 0.4}.__getitem__), T0, T0 + timedelta(hours=1))
    assert (empty[0].up_w, empty[0].up_wh, empty[0].up_max_duration_s) == (0.0, 0.0, 0.0)
    assert empty[0].down_w > 0 and empty[0].down_max_duration_s >= 3600 - 1e-6


def test_plan_flexibility_without_a_plan_uses_the_soc_energy_and_explains_storm_mode():
    from vpp.control.loop import Controller

    cfg = two_batteries(1800)

    class Clock:
        def now(self):
            return T0

    ctl = Controller(cfg, clock=Clock())
    pf = PlanFlexibility(ctl, BatteryFlexibility(cfg, {"b1": 0.9, "b2": 0.45}.__getitem__))
    (r,) = pf.detail(T0, T0 + timedelta(minutes=30))
    assert (r.source, r.up_wh, r.reason, r.reason_detail) == ("soc", pytest.approx(3800.0), "", "")
    assert r.up_max_duration_s == pytest.approx(3600 * 3.8 / 5)
    ctl.storm.on(T0, 0.9, T0 + timedelta(hours=3), "JMA 大雨警報 (03) in force for 0410000")
    (r,) = pf.detail(T0, T0 + timedelta(minutes=30))
    assert (r.available, r.up_w, r.reason) == (False, 0.0, "storm_mode")
    assert r.reason_detail == "JMA 大雨警報 (03) in force for 0410000"
