"""Fleet planning: every home and the feeder within limits."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer import GridParams
from optimizer.examples import example_fleet
from optimizer.fleet import aggregate_problem, plan_fleet


@pytest.fixture(scope="module")
def fleet():
    fp = example_fleet(n_homes=60, n=96, slot_s=1800, seed=3)
    return fp, plan_fleet(fp)


def test_fleet_respects_feeder_and_home_limits(fleet):
    fp, r = fleet
    assert r.violations == []
    assert r.feeder_export_w.max() <= fp.feeder.export_limit_w + 1.0
    assert r.feeder_import_w.max() <= fp.feeder.import_limit_w + 1.0
    a = fp.arrays()
    assert np.all(r.battery_w <= a["max_discharge_w"][:, None] + 1e-6)
    assert np.all(-r.battery_w <= a["max_charge_w"][:, None] + 1e-6)
    assert np.all(r.grid_w >= -a["home_export_limit_w"][:, None] - 1e-6)
    assert np.all(r.grid_w <= a["home_import_limit_w"][:, None] + 1e-6)
    assert np.all(r.soc <= a["soc_max"][:, None] + 1e-9)
    # homes starting above their floor never go below it; those below only recover
    above = a["soc0"] >= 0.3
    assert r.soc[above].min() >= 0.3 - 1e-9
    low = ~above
    assert low.any()
    # full-power charging lifts every low home (0.15) onto its floor within two 30-min slots
    assert np.all(r.soc[low][:, 0] > a["soc0"][low] + 0.1)
    assert r.soc[low][:, 2:].min() >= 0.3 - 1e-9


def test_feeder_export_limit_binds_and_is_held(fleet):
    fp, r = fleet
    # the synthetic district's noon PV exceeds the feeder: curtailment or storage must absorb it
    raw = (fp.pv_w - fp.load_w).sum(axis=0)
    assert raw.max() > fp.feeder.export_limit_w
    assert r.feeder_export_w.max() == pytest.approx(fp.feeder.export_limit_w, rel=1e-6)


def test_fleet_cost_close_to_aggregate_bound(fleet):
    _, r = fleet
    # the aggregate LP is a relaxation: the homes' plan costs at least as much, and not far off
    assert r.total_cost >= r.aggregate.total_cost - 1e-6
    assert r.total_cost - r.aggregate.total_cost <= 0.1 * abs(r.aggregate.total_cost) + 0.5
    # the homes deliver exactly the aggregate battery plan (recovery aside)
    assert r.tracking_error_w < 1.0


def test_tight_feeder_import_limit_is_respected():
    fp = example_fleet(n_homes=30, n=48, slot_s=3600, seed=1)
    fp.feeder = GridParams(import_limit_w=600.0 * 30, export_limit_w=1000.0 * 30)
    r = plan_fleet(fp)
    assert r.feeder_import_w.max() <= 600.0 * 30 + 1.0
    assert "feeder limit exceeded" not in r.violations
    agg = aggregate_problem(fp)
    assert agg.batteries[0].capacity_wh == pytest.approx(fp.capacity_wh.sum())


def test_fleet_storm_floor_reached_by_every_home():
    from optimizer import storm_floor

    fp = example_fleet(n_homes=40, n=96, slot_s=1800, seed=5)
    fp.soc0 = np.clip(fp.soc0, 0.3, None)
    fp.floor = np.tile(storm_floor(0.3, 0.8, deadline_slot=30, ramp_slots=10, n=96), (40, 1))
    r = plan_fleet(fp)
    assert r.violations == []
    assert r.soc[:, 30:].min() >= 0.8 - 1e-9
    assert r.feeder_import_w.max() <= fp.feeder.import_limit_w + 1.0
