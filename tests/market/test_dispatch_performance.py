from __future__ import annotations

import math

import pandas as pd
import pytest

from vpp.market.performance import evaluate_dispatch

IDX = pd.date_range("2026-11-25 05:00", periods=3, freq="30min", tz="UTC")


def test_delivered_energy_power_and_compliance():
    # baseline 30/30/30 kW, metered 20/10/25 kW → delivered 10/20/5 kW
    # → 5, 10, 2.5 kWh per 30-min slot = 17.5 kWh; instructed 10 kW × 1.5 h = 15 kWh.
    base = pd.Series([30_000.0] * 3, index=IDX)
    actual = pd.Series([20_000.0, 10_000.0, 25_000.0], index=IDX)
    p = evaluate_dispatch(base, actual, 10_000.0)
    assert p.slots["delivered_kwh"].tolist() == pytest.approx([5.0, 10.0, 2.5])
    assert p.slots["ratio"].tolist() == pytest.approx([1.0, 2.0, 0.5])
    assert p.delivered_kwh == pytest.approx(17.5)
    assert p.instructed_kwh == pytest.approx(15.0)
    assert p.mean_delivered_kw == pytest.approx(17.5 / 1.5)
    assert p.compliance_ratio == pytest.approx(17.5 / 15.0)
    assert p.missing_slots == ()


def test_missing_metering_counts_as_zero_and_is_reported():
    base = pd.Series([30_000.0] * 3, index=IDX)
    actual = pd.Series([20_000.0, 20_000.0], index=IDX[:2])
    p = evaluate_dispatch(base, actual, pd.Series([10_000.0, 10_000.0, 10_000.0], index=IDX))
    assert p.missing_slots == (IDX[2],)
    assert p.delivered_kwh == pytest.approx(10.0)
    assert p.compliance_ratio == pytest.approx(10.0 / 15.0)
    d = p.as_dict()
    assert d["slots"][2]["actual_w"] is None and d["missing_slots"] == [IDX[2].isoformat()]


def test_down_direction_and_overdelivery_sign():
    base = pd.Series([5_000.0] * 3, index=IDX)
    actual = pd.Series([15_000.0, 5_000.0, 0.0], index=IDX)  # absorbed +10, 0, −5 kW
    p = evaluate_dispatch(base, actual, 10_000.0, direction="down")
    assert p.slots["delivered_w"].tolist() == pytest.approx([10_000.0, 0.0, -5_000.0])
    assert p.compliance_ratio == pytest.approx(2.5 / 15.0)


def test_nothing_instructed_gives_nan_ratio_and_bad_input_raises():
    base = pd.Series([1_000.0] * 3, index=IDX)
    p = evaluate_dispatch(base, base, 0.0)
    assert math.isnan(p.compliance_ratio) and p.as_dict()["compliance_ratio"] is None
    with pytest.raises(ValueError, match=">= 0"):
        evaluate_dispatch(base, base, -1.0)
    with pytest.raises(ValueError, match="instructed amount missing"):
        evaluate_dispatch(base, base, pd.Series([1.0], index=IDX[:1]))
