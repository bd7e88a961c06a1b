"""Disaster reserve: hard floor, storm floor, recovery slack, outages."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from optimizer import solve, storm_floor


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    buy=arrays(float, 24, elements=st.floats(-0.2, 1.0)),
    sell=arrays(float, 24, elements=st.floats(-0.2, 1.0)),
    floor=st.floats(0.1, 0.9),
)
def test_floor_never_crossed_without_outage(make_site, buy, sell, floor):
    from optimizer import Prices

    p = make_site(prices=Prices(buy=buy, sell=sell), battery={"floor": floor, "soc0": 0.95})
    s = solve(p)
    assert s.solver.validated, s.warnings
    assert s.soc["bat1"].min() >= floor - 1e-6
    assert s.recovery_kwh["bat1"] == 0.0
    # no simultaneous charge/discharge or import/export, whatever the prices
    assert np.all(np.minimum(s.grid_import_w, s.grid_export_w) < 1.0)


def test_storm_floor_shape():
    f = storm_floor(0.2, 0.8, deadline_slot=10, ramp_slots=4, n=16)
    assert f[:6].tolist() == [0.2] * 6
    assert np.all(np.diff(f) >= 0)
    assert np.allclose(f[10:], 0.8)


def test_storm_floor_reached_by_deadline(make_site):
    floor = storm_floor(0.3, 0.9, deadline_slot=12, ramp_slots=6, n=24)
    p = make_site(battery={"floor": floor, "soc0": 0.3})
    s = solve(p)
    assert s.solver.validated
    assert np.all(s.soc["bat1"][12:] >= 0.9 - 1e-6)
    assert s.recovery_kwh["bat1"] == 0.0


def test_soc0_below_floor_gives_feasible_plan_with_reported_recovery(make_site):
    p = make_site(battery={"floor": 0.8, "soc0": 0.05})
    s = solve(p)
    soc = s.soc["bat1"]
    assert s.recovery_kwh["bat1"] > 0
    assert any("below the reserve floor" in w for w in s.warnings)
    # it recovers at full power: SoC rises every slot until the floor is met, then stays above
    k = int(np.argmax(soc >= 0.8 - 1e-6))
    assert k > 0 and np.all(np.diff(soc[: k + 1]) > 0)
    assert np.all(soc[k:] >= 0.8 - 1e-6)
    assert s.battery_w["bat1"][0] == pytest.approx(-5000.0)


def test_floor_above_soc_max_is_slack_not_infeasible(make_site):
    p = make_site(battery={"floor": 0.99, "soc0": 0.5, "soc_max": 0.95})
    s = solve(p)
    assert s.soc["bat1"].max() <= 0.95 + 1e-6
    assert s.soc["bat1"][-1] == pytest.approx(0.95, abs=1e-6)
    assert s.recovery_kwh["bat1"] == pytest.approx(0.04 * 10, abs=1e-3)
    assert any("reserve floor" in w for w in s.warnings)


def test_outage_releases_floor_and_islands(make_site):
    out = np.zeros(24, bool)
    out[18:22] = True  # evening outage: the reserve is there to be used
    p = make_site(battery={"floor": 0.6, "soc0": 0.9}, outage=out, load_w=np.full(24, 2000.0))
    s = solve(p)
    assert s.solver.validated
    assert np.all(s.grid_import_w[out] == 0) and np.all(s.grid_export_w[out] == 0)
    assert s.soc["bat1"][21] < 0.6  # the reserve was spent during the outage
    assert np.all(s.soc["bat1"][~out] >= 0.6 - 1e-6)
    assert np.all(np.isnan(s.floor["bat1"][out]))


def test_negative_prices_use_binaries_and_curtail(make_site):
    from optimizer import Prices

    buy = np.full(24, 0.2)
    buy[10:14] = -0.1
    p = make_site(prices=Prices(buy=buy, sell=np.full(24, -0.05)),
                  battery={"degradation_cost_per_kwh": 0.02})
    s = solve(p)
    # burning energy would pay here, so the exclusivity binaries are in the model
    assert s.solver.n_binaries > 0 and s.solver.validated
    neg = slice(10, 14)
    # being paid to import: PV fully curtailed, battery filled to soc_max
    assert np.allclose(s.pv_curtail_w[neg], s.pv_w[neg])
    assert s.soc["bat1"][13] == pytest.approx(0.95, abs=1e-6)
    assert np.all(np.minimum(s.grid_import_w, s.grid_export_w) < 1.0)


def test_flat_prices_no_cycling(make_site):
    from optimizer import Prices

    p = make_site(pv_w=np.zeros(24), prices=Prices(buy=0.2, sell=0.08),
                  battery={"degradation_cost_per_kwh": 0.01})
    s = solve(p)
    assert s.solver.n_binaries == 0
    assert s.battery_w["bat1"].min() > -1.0  # never charges: nothing to gain
