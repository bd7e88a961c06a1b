"""Peak shaving: with a demand charge the plan keeps the 30-min average import at the month's
running maximum when the battery can, and prices going above it."""
from datetime import datetime, timezone

import numpy as np
import pytest

import optimizer
from optimizer.model_demand import koma_groups

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)


def problem(demand=None, slot_s=900, soc0=0.8, spike_at=None):
    n = 48 * 1800 // slot_s // 2  # 12 h
    load = np.full(n, 20_000.0)
    at = n // 2 if spike_at is None else spike_at
    load[at: at + 4] = 60_000.0  # a 1-h (15-min slots) or 2-h (30-min) spike
    bat = optimizer.BatteryParams(id="bat1", capacity_wh=100_000, max_charge_w=50_000, max_discharge_w=50_000,
                                  soc0=soc0, floor=0.3)
    return optimizer.Problem(horizon=optimizer.Horizon(T0, slot_s, n), pv_w=np.zeros(n), load_w=load,
                             batteries=(bat,), grid=optimizer.GridParams(100_000, 0),
                             prices=optimizer.Prices(buy=25.0, sell=0.0), demand=demand)


def koma_avg(sched, slot_s):
    imp = sched.grid_import_w
    return np.array([imp[g].mean() for g in koma_groups(T0.timestamp(), slot_s, len(imp))])


@pytest.mark.parametrize("slot_s", [900, 1800])
def test_the_spike_is_shaved_to_the_months_running_maximum(slot_s):
    flat = optimizer.solve(problem(slot_s=slot_s))
    shaved = optimizer.solve(problem(optimizer.DemandParams(peak0_w=30_000, price_per_kw=1900.0), slot_s))
    # without the charge a flat price gives no reason to discharge into the spike
    assert koma_avg(flat, slot_s).max() > 55_000
    # with it the 30-min average import stays at the month's 30 kW: the battery covers the rest
    assert koma_avg(shaved, slot_s).max() == pytest.approx(30_000, abs=1.0)
    assert min(shaved.soc["bat1"]) >= 0.3 - 1e-6


def test_a_peak_the_battery_cannot_shave_is_raised_only_as_far_as_needed():
    # at the floor already and the spike first: no time to charge, the new peak is unavoidable
    # but no higher than the spike itself (nothing else is moved above it)
    sched = optimizer.solve(problem(optimizer.DemandParams(peak0_w=30_000, price_per_kw=1900.0), soc0=0.3,
                                    spike_at=0))
    avg = koma_avg(sched, 900)
    assert avg.max() == pytest.approx(60_000, abs=1.0) and avg[2:].max() <= 60_000 + 1.0
    assert sched.unserved_w.max() < 1.0  # no load is shed to keep the peak down
    assert min(sched.soc["bat1"]) >= 0.3 - 1e-6


def test_koma_groups_follow_the_30_minute_boundaries():
    start = datetime(2026, 12, 1, 0, 15, tzinfo=timezone.utc).timestamp()
    assert koma_groups(start, 900, 5) == [[0], [1, 2], [3, 4]]
