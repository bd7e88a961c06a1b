"""KPI arithmetic on a hand-made record (pure functions)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from simulators.scenarios.kpis import check, compute_kpis
from simulators.scenarios.spec import Assertion, deep_merge


def record(n=6):
    idx = pd.date_range("2026-06-22", periods=n, freq="1min", tz="UTC")
    return pd.DataFrame({
        "dt_s": 60.0, "outage": [False, False, True, True, False, False],
        "load_w": 3000.0, "pv_w": 0.0, "ev_w": 0.0, "battery_w": 1000.0, "grid_w": 2000.0,
        "imbalance_w": [0.0, 0.0, 0.0, 2500.0, 0.0, 0.0],
        "soc:b": [0.35, 0.29, 0.20, 0.10, 0.10, 0.12], "floor:b": 0.30,
        "bat_w:b": [1000.0, 1000.0, 3000.0, 500.0, -2000.0, 1000.0],
        "source:b": ["plan", "plan", "reserve", "reserve", "reserve", "fallback"],
        "plan_w": 1000.0, "dispatch_w": np.nan}, index=idx)


def tariff(idx):
    return pd.DataFrame({"buy_per_kwh": 30.0, "sell_per_kwh": 10.0, "co2_kg_per_kwh": 0.5}, index=idx)


def test_reserve_violations_only_outside_outages_and_only_when_discharging():
    rec = record()
    k, slots = compute_kpis(rec, ["b"], import_limit_w=10_000, critical_load_w=1000,
                            tariff=tariff(rec.index))
    # rows 1 and 5 discharge below floor − tolerance; rows 2–3 are in the outage; row 4 charges
    assert k["reserve_violations"] == 2
    # row 3: 2.5 kW of 3 kW unserved; only 0.5 kW supplied, so 0.5 kW of the 1 kW critical load
    assert np.isclose(k["unserved_kwh"], 2.5 / 60) and np.isclose(k["critical_unserved_kwh"], 0.5 / 60)
    assert k["outage_minutes"] == 2 and k["fallback_minutes"] == 1
    assert np.isclose(k["cost"], 6 * 2.0 / 60 * 30.0) and slots == []


def test_check_and_deep_merge():
    fails = check({"a": 1.0, "b": 5.0}, [Assertion(kpi="a", max=0), Assertion(kpi="b", min=1, max=9),
                                         Assertion(kpi="c", max=1)])
    assert fails == ["a = 1 > max 0", "c: unknown KPI"]
    base = {"grid": {"import_limit_w": 1, "export_limit_w": 2}, "devices": [{"id": "x", "timeout_s": 1}]}
    merged = deep_merge(base, {"grid": {"import_limit_w": 5}, "devices": [{"id": "x", "timeout_s": 3}]})
    assert merged == {"grid": {"import_limit_w": 5, "export_limit_w": 2}, "devices": [{"id": "x", "timeout_s": 3}]}
