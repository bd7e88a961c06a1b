"""EV sessions, VPP awards/dispatch, forecast cleaning, parameter errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from optimizer import EvSession, ForecastWarning, Prices, VppCommitments, solve


def test_ev_gets_its_energy_by_departure(make_site):
    ev = EvSession("ch1", arrival_slot=2, departure_slot=8, energy_wh=20_000, min_w=0, max_w=7400)
    s = solve(make_site(evs=(ev,)))
    w = s.ev_w["ch1"]
    assert w.sum() * 1.0 == pytest.approx(20_000, abs=1.0)  # 1-h slots
    assert np.all(w[:2] == 0) and np.all(w[8:] == 0)
    assert s.ev_unmet_wh["ch1"] == pytest.approx(0.0, abs=1e-6)
    assert s.solver.validated


def test_ev_needing_more_than_possible_reports_slack(make_site):
    ev = EvSession("ch1", arrival_slot=20, departure_slot=22, energy_wh=30_000, max_w=7400)
    s = solve(make_site(evs=(ev,)))
    assert s.ev_w["ch1"].sum() == pytest.approx(2 * 7400, abs=1.0)
    assert s.ev_unmet_wh["ch1"] == pytest.approx(30_000 - 14_800, abs=1.0)
    assert any("cannot be delivered" in w for w in s.warnings)


def test_ev_min_power_is_semicontinuous(make_site):
    ev = EvSession("ch1", arrival_slot=0, departure_slot=10, energy_wh=5_000, min_w=1400, max_w=7400)
    s = solve(make_site(evs=(ev,)))
    w = s.ev_w["ch1"]
    assert np.all((w < 1e-6) | (w >= 1400 - 1e-6))
    assert w.sum() == pytest.approx(5_000, abs=1.0)
    assert s.solver.n_binaries >= 10


def test_vpp_up_award_keeps_energy_above_floor(make_site):
    up = np.zeros(24)
    up[18:21] = 3000.0  # evening: 3 kW for 1 h must stay deliverable
    p = make_site(vpp=VppCommitments(award_up_w=up, duration_s=3600), battery={"floor": 0.3})
    s = solve(p)
    assert s.solver.validated
    soc, w = s.soc["bat1"], s.battery_w["bat1"]
    need = 3000 * 1.0 / (0.95 * 10_000)
    assert np.all(soc[17:21] >= 0.3 + need - 1e-6)
    assert np.all(5000 - w[18:21] >= 3000 - 1e-6)


def test_vpp_down_award_keeps_charge_headroom(make_site):
    dn = np.zeros(24)
    dn[12:14] = 4000.0
    p = make_site(vpp=VppCommitments(award_down_w=dn, duration_s=3600), battery={"soc0": 0.9})
    s = solve(p)
    soc, w = s.soc["bat1"], s.battery_w["bat1"]
    assert np.all(0.95 - soc[12:14] >= 4000 / 10_000 * 0.95 - 1e-6)
    assert np.all(5000 + w[12:14] >= 4000 - 1e-6)


def test_vpp_dispatch_is_followed(make_site):
    disp = np.full(24, np.nan)
    disp[9:11] = -3000.0  # charge 3 kW
    disp[19] = 2500.0
    s = solve(make_site(vpp=VppCommitments(dispatch_w=disp)))
    w = s.battery_w["bat1"]
    assert w[9:11] == pytest.approx([-3000, -3000], abs=1e-3)
    assert w[19] == pytest.approx(2500, abs=1e-3)
    assert np.abs(s.dispatch_shortfall_w).max() < 1e-6


def test_nan_and_negative_forecasts_are_cleaned_with_warning(make_site):
    p = make_site()
    pv = p.pv_w.copy()
    pv[3] = np.nan
    pv[12] = -50.0
    load = p.load_w.copy()
    load[5] = np.inf
    p = make_site(pv_w=pv, load_w=load[:20], prices=Prices(buy=np.r_[np.nan, np.full(23, 0.2)], sell=0.05))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = solve(p)
    msgs = [str(w.message) for w in caught if w.category is ForecastWarning]
    assert any("pv_w" in m for m in msgs) and any("load_w" in m for m in msgs)
    assert s.pv_w[3] == 0 and s.pv_w[12] == 0 and len(s.load_w) == 24 and s.load_w[5] == 0
    assert s.solver.validated
    assert any("NaN" in w for w in s.warnings)


def test_inconsistent_battery_is_a_clear_error(make_site):
    with pytest.raises(ValueError, match="soc_min"):
        solve(make_site(battery={"soc_min": 0.9, "soc_max": 0.5}))


def test_validate_catches_a_corrupted_plan(make_site):
    from optimizer import validate

    p = make_site(battery={"floor": 0.4, "soc0": 0.6}).cleaned()
    s = solve(p)
    assert validate(p, s) == []
    s.soc["bat1"][5] = 0.2  # below the floor
    s.grid_import_w[7] += 500.0  # breaks the power balance
    s.grid_export_w[9] = 9000.0  # above the export limit
    found = " | ".join(validate(p, s))
    assert "floor" in found and "balance" in found and "grid limit" in found


def test_co2_price_shifts_imports_and_is_reported(make_site):
    co2 = np.full(24, 0.2)
    co2[0:6] = 0.9  # dirty night, clean afternoon
    buy = np.where(np.arange(24) < 6, 0.15, 0.2)  # the dirty night is also the cheap night
    base = make_site(pv_w=np.zeros(24), prices=Prices(buy=buy, sell=0.0, co2_kg_per_kwh=co2),
                     battery={"soc0": 0.3, "floor": 0.3, "soc_end": 0.9})
    s0 = solve(base)
    assert s0.grid_import_w[:6].max() > 600.0 + 1000.0  # without a CO2 price: charge at night
    base.prices.co2_price_per_kg = 0.5
    s1 = solve(base)
    assert s1.total_co2_kg < s0.total_co2_kg
    assert s1.total_co2_kg == pytest.approx((s1.grid_import_w * co2).sum() / 1000, rel=1e-9)
    assert s1.grid_import_w[:6].max() <= 600.0 + 1e-6  # only the load in the dirty hours
