"""The service's problem builder plans over ``optimiser.scenarios`` joint scenarios from the
forecast's quantiles (or its fallbacks); one scenario is exactly the plan it made before."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

import optimizer
from vpp.config import read_config, updated
from vpp.control.problem import build_problem, problem_horizon, slot_times
from vpp.control.reserve import battery_floors
from vpp.control.scenario_inputs import DEFAULT_SPREAD, forecast_band
from vpp.forecast.site import forecast_site

EXAMPLE = Path(__file__).parents[2] / "deploy" / "examples" / "community-centre.yaml"
NOW = datetime(2026, 6, 20, 15, 0, tzinfo=UTC)


def _inputs(k: int, **fc_changes):
    base = read_config(EXAMPLE)
    config = updated(base, optimiser=updated(base.optimiser, scenarios=k, horizon_h=24.0))
    fc, _ = forecast_site(config, NOW)
    for name, v in fc_changes.items():
        setattr(fc, name, v)
    h = problem_horizon(config, fc, NOW)
    floors = battery_floors(config, slot_times(h), None)
    soc = {b.id: 0.6 for b in config.devices_of("battery")}
    return config, fc, soc, floors


def test_one_scenario_builds_and_solves_todays_problem():
    config, fc, soc, floors = _inputs(1)
    p = build_problem(config, fc, soc, floors, start=NOW)
    assert p.scenarios is None
    s = optimizer.solve(p)
    assert s.soc_scenarios == {} and s.solver.validated


def test_scenarios_from_the_forecast_quantiles():
    config, fc, soc, floors = _inputs(4)
    default = build_problem(config, fc, soc, floors, start=NOW).scenarios  # no quantiles: default spread
    config, fc, soc, floors = _inputs(4, pv_p10_w=fc.pv_w * 0.5, pv_p90_w=fc.pv_w * 1.1)
    p = build_problem(config, fc, soc, floors, start=NOW)
    sc = p.scenarios
    assert sc is not None and sc.k == 4
    np.testing.assert_array_equal(sc.pv_w[0], p.pv_w)
    np.testing.assert_array_equal(sc.load_w[0], p.load_w)
    # same draws, the forecast's band instead of the default one (p90 +10 % vs +25 %, p10 −50 % vs −40 %)
    dev, dev0 = sc.pv_w - p.pv_w, default.pv_w - p.pv_w
    up = dev0 > 1e-9
    assert up.any() and (dev0 < -1e-9).any()
    np.testing.assert_allclose(dev[up], 0.4 * dev0[up], rtol=1e-9)
    np.testing.assert_array_equal(sc.load_w, default.load_w)  # no load quantiles: default for both
    s = optimizer.solve(p)
    bat = config.devices_of("battery")[0].id
    assert s.soc_scenarios[bat].shape == (4, p.horizon.n) and s.solver.validated
    assert np.ptp(s.soc_scenarios[bat][:, 0]) < 1e-7
    assert np.all(s.soc_scenarios[bat] >= np.asarray(floors[bat]) - 1e-6)


def test_band_fallbacks():
    p50 = np.array([0.0, 1000.0, 2000.0])
    lo, hi = forecast_band("pv", p50, None, None)
    np.testing.assert_allclose(lo, DEFAULT_SPREAD["pv"][0] * p50)
    np.testing.assert_allclose(hi, DEFAULT_SPREAD["pv"][1] * p50)
    lo, hi = forecast_band("load", p50, None, None, errors=np.array([-300.0, 0.0, 500.0] * 10))
    assert lo[1] == pytest.approx(1000.0 - 300.0) and hi[2] == pytest.approx(2000.0 + 500.0)
    lo, hi = forecast_band("load", p50, np.array([np.nan, 900.0, 1500.0]), None)
    assert lo[1] == 900.0 and lo[0] == 0.0  # NaN falls back slot by slot


def test_day_ahead_bids_plan_over_the_scenarios():
    """With ``optimiser.scenarios: 3`` the bids are sized over three scenarios: one offer set,
    the SoC of every scenario above the floor, the first step shared."""
    from datetime import date
    from zoneinfo import ZoneInfo

    from vpp.market.bids import plan_bids

    base = read_config(EXAMPLE)
    config = updated(base, optimiser=updated(base.optimiser, scenarios=3),
                     vpp={"capacity_price_per_kw": 2.0, "energy_price_per_kwh": 20.0})
    res = plan_bids(config, date(2026, 6, 22), now=datetime(2026, 6, 21, 11, 30, tzinfo=ZoneInfo("Asia/Tokyo")),
                    soc={"bat1": 0.6})
    s = res.schedule
    assert s.solver.validated and s.soc_scenarios["bat1"].shape[0] == 3
    assert res.expected_revenue > 0
    assert np.all(s.soc_scenarios["bat1"] >= np.nan_to_num(s.floor["bat1"], nan=0.0) - 1e-6)
    assert np.ptp(s.soc_scenarios["bat1"][:, 0]) < 1e-7
