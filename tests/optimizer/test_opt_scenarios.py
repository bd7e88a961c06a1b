"""Scenario planning: the sampler respects the quantiles and the slot correlation; the plan's
first step is the same in every scenario; the reserve floor holds in every scenario; one
scenario is exactly today's plan."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import VppCommitments, sample_scenarios, solve
from optimizer.scenarios import Z90, split_normal
from tests.optimizer.conftest import day_shape, site


def test_sampled_quantiles_and_slot_correlation():
    n = 48
    p50 = np.linspace(100.0, 5000.0, n)
    sc = sample_scenarios(0.5 * p50, p50, 1.3 * p50, 0.8 * p50, p50, 1.5 * p50, 4001, slot_correlation=0.8, seed=3)
    assert sc.pv_w.shape == (4001, n) and sc.weights.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(sc.pv_w[0], p50)  # row 0 is the median
    np.testing.assert_array_equal(sc.load_w[0], p50)
    rows = sc.pv_w[1:]
    assert np.mean(rows < 0.5 * p50) == pytest.approx(0.10, abs=0.02)
    assert np.mean(rows > 1.3 * p50) == pytest.approx(0.10, abs=0.02)
    assert np.mean(sc.load_w[1:] > 1.5 * p50) == pytest.approx(0.10, abs=0.02)
    # normal scores of neighbouring slots correlate at 0.8, slots far apart hardly at all
    z = np.where(rows >= p50, (rows - p50) / (0.3 * p50 / Z90), (rows - p50) / (0.5 * p50 / Z90))
    assert np.corrcoef(z[:, 10], z[:, 11])[0, 1] == pytest.approx(0.8, abs=0.05)
    assert abs(np.corrcoef(z[:, 10], z[:, 40])[0, 1]) < 0.1
    again = sample_scenarios(0.5 * p50, p50, 1.3 * p50, 0.8 * p50, p50, 1.5 * p50, 4001, slot_correlation=0.8, seed=3)
    np.testing.assert_array_equal(again.load_w, sc.load_w)


def test_sampler_rejects_bad_arguments():
    x = np.ones(4)
    with pytest.raises(ValueError, match="k must"):
        sample_scenarios(x, x, x, x, x, x, 0)
    with pytest.raises(ValueError, match="slot_correlation"):
        sample_scenarios(x, x, x, x, x, x, 3, slot_correlation=1.0)
    with pytest.raises(ValueError, match="slots"):
        sample_scenarios(x, x, x, np.ones(5), np.ones(5), np.ones(5), 3)
    assert split_normal(np.array([-10.0]), 80.0, 100.0, 150.0)[0] == 0.0  # clipped at 0


def _spread_problem(k: int, soc0=0.5, floor=0.3, seed=0, award=0.0):
    n = 24
    pv = day_shape(n, 5000.0)
    load = np.full(n, 600.0) + 900.0 * np.exp(-0.5 * ((np.arange(n) - 19) / 2.0) ** 2)
    p = site(n, pv_w=pv, load_w=load, battery={"soc0": soc0, "floor": floor},
             vpp=VppCommitments(award_up_w=np.where((np.arange(n) >= 17) & (np.arange(n) < 20), award, 0.0))
             if award else None)
    sc = sample_scenarios(0.4 * pv, pv, 1.2 * pv, 0.8 * load, load, 1.6 * load, k, seed=seed)
    return dataclasses.replace(p, scenarios=sc)


def test_first_step_is_the_same_in_every_scenario_and_later_steps_differ():
    s = solve(_spread_problem(6, soc0=0.6))
    soc = s.soc_scenarios["bat1"]
    assert soc.shape == (6, 24) and s.solver.validated and s.solver.status == "Optimal"
    assert np.ptp(soc[:, 0]) < 1e-7  # the setpoint applied now: one SoC after slot 0
    assert np.ptp(soc, axis=0).max() > 0.01  # the scenarios do differ later (the test can fail)
    np.testing.assert_allclose(soc[0], s.soc["bat1"])


def test_one_scenario_is_todays_plan():
    p = _spread_problem(1)
    a, b = solve(p), solve(dataclasses.replace(p, scenarios=None))
    assert a.solver.objective == b.solver.objective
    for f in ("grid_import_w", "grid_export_w", "pv_curtail_w"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    np.testing.assert_array_equal(a.battery_w["bat1"], b.battery_w["bat1"])
    np.testing.assert_array_equal(a.soc["bat1"], b.soc["bat1"])
    assert a.soc_scenarios == {}


def test_award_kept_in_the_pessimistic_scenarios():
    """An up award in the evening: every scenario (high load, low PV ones too) keeps the
    energy above the floor for it, so the plan holds more than the median scenario needs."""
    s = solve(_spread_problem(5, soc0=0.35, award=3000.0))
    assert s.solver.validated
    fl = 0.3
    need = 3000.0 * 1.0 / (0.95 * 10_000.0)  # SoC above the floor for 3 kW × 1 h
    soc = s.soc_scenarios["bat1"]
    assert np.all(soc[:, 16:20] >= fl + need - 1e-4)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(2, 4), soc0=st.floats(0.2, 0.95), floor=st.floats(0.05, 0.6), seed=st.integers(0, 2**16),
       storm=st.booleans())
def test_floor_holds_in_every_scenario(k, soc0, floor, seed, storm):
    p = _spread_problem(k, soc0=max(soc0, floor), floor=floor, seed=seed)
    if storm:  # a storm ramp the battery can follow at full charge power (0.5 per hour at most)
        target = min(0.9, floor + 0.3)
        bat = dataclasses.replace(p.batteries[0], floor=np.clip(floor + np.arange(24) * 0.05, floor, target))
        p = dataclasses.replace(p, batteries=(bat,))
    s = solve(p)
    assert s.solver.validated
    fl = np.broadcast_to(np.asarray(p.batteries[0].floor, float), (24,))
    assert np.all(s.soc_scenarios["bat1"] >= np.maximum(fl, 0.1) - 1e-6)
    assert np.ptp(s.soc_scenarios["bat1"][:, 0]) < 1e-7


def test_offers_one_offer_deliverable_in_every_scenario():
    """The bids problem over 3 scenarios from its p10/p90: one offer per slot, and in every
    scenario the energy above the floor at the start of an offered slot covers the call
    (less the expected activation the SoC already carries)."""
    from optimizer.examples import bids_problem

    p = bids_problem(n=96, slot_s=1800)
    o = p.offers
    sc = sample_scenarios(o.pv_low_w, p.pv_w, o.pv_high_w, o.load_low_w, p.load_w, o.load_high_w, 3, seed=5)
    s = solve(dataclasses.replace(p, scenarios=sc))
    assert s.solver.validated and s.solver.status == "Optimal", s.warnings
    assert s.expected_revenue > 0 and any(x.up_w > 0 for x in s.offers)
    b = p.batteries[0]
    kd = p.horizon.dt_h / (b.eta_discharge * b.capacity_wh)
    soc = s.soc_scenarios[b.id]
    assert soc.shape == (3, 96)
    for t, x in enumerate(s.offers):
        if x.up_w > 0:
            need = b.floor + (1 - o.activation_ratio) * kd * x.up_w
            assert np.all(soc[:, t] >= need - 1e-6), (t, soc[:, t], need)
    assert np.ptp(soc[:, 0]) < 1e-7
