"""Real bills: import and export metered separately, every per-kWh part, FIT/FIP, the 高圧
demand charge (12-month rule), per home, against the no-battery counterfactual."""
from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from tests.testkit.sites import make_site
from vpp.market.bill import bill_lines, contract_kw, no_battery_flows, period_bounds, site_bill

BILL = {"fuel_adjustment": [{"since": "2026-11-01", "per_kwh": -1.0}],
        "renewable_levy": [{"since": "2026-05-01", "per_kwh": 4.0}],
        "sell_scheme": "fit", "sell_versions": [{"since": "2026-01-01", "per_kwh": 16.0}],
        "demand": {"unit_price_per_kw": 2000.0, "power_factor_pct": 95}}


def test_no_battery_flows_shift_export_first_then_import():
    imp, exp, bat = np.array([10.0, 0.0, 3.0, 2.0]), np.array([0.0, 5.0, 0.0, 1.0]), np.array([6.0, 2.0, -4.0, -3.0])
    i2, e2 = no_battery_flows(imp, exp, bat)
    # discharge 6 with no export: +6 import; discharge 2 while exporting 5: export 3;
    # charge 4 while importing 3: import 0, export 1; charge 3 with import 2, export 1: import 0, export 2
    assert i2.tolist() == [16.0, 0.0, 0.0, 0.0] and e2.tolist() == [0.0, 3.0, 1.0, 2.0]
    assert np.allclose((i2 - e2) - (imp - exp), bat)


def test_bill_lines_by_hand():
    idx = pd.date_range("2026-12-01", periods=2, freq="30min", tz="UTC")
    prices = pd.DataFrame({"energy_per_kwh": [20.0, 40.0], "fuel_adjustment_per_kwh": -1.0,
                           "renewable_levy_per_kwh": 4.0, "sell_per_kwh": 16.0}, index=idx)
    b = bill_lines(np.array([5.0, 2.0]), np.array([1.0, 3.0]), prices, basic_per_kw=1800.0, contract=12.0)
    assert b.energy == pytest.approx(180.0)  # 5×20 + 2×40
    assert b.fuel_adjustment == pytest.approx(-7.0) and b.renewable_levy == pytest.approx(28.0)
    assert b.sold == pytest.approx(64.0) and b.peak_kw == pytest.approx(10.0)  # 5 kWh in 30 min
    assert b.basic_charge == pytest.approx(21_600.0)
    assert b.total == pytest.approx(180 - 7 + 28 + 21_600 - 64)


def test_contract_is_the_highest_of_twelve_months_unless_fixed():
    peaks = [90.0] + [40.0] * 11 + [55.0]  # the 90 kW month is 13 months back: out of the window
    assert contract_kw(peaks, None) == 55.0
    assert contract_kw([40.0] * 11 + [35.0], None) == 40.0  # last year's 40 kW still binds
    assert contract_kw([40.0] * 12, 100.0) == 100.0


def _store(tmp_path, cfg, meter_w, bat_w, t0: str, seconds: int, step: int = 10):
    from vpp.storage.embedded import EmbeddedStore

    store = EmbeddedStore(cfg.storage, site="s")
    store.open()
    s0 = int(pd.Timestamp(t0).timestamp())
    rows = []
    for k in range(0, seconds + 1, step):
        rows.append(("s", "m1", "meter", (s0 + k) * 10**9, "good", "", json.dumps({"power_w": meter_w(k)})))
        rows.append(("s", "b1", "battery", (s0 + k) * 10**9, "good", "", json.dumps({"power_w": bat_w(k)})))
    store.write_prepared(rows)
    return store


def test_a_day_bill_meters_import_and_export_separately(tmp_path):
    cfg = make_site("metered-battery", storage={"backend": "embedded", "path": str(tmp_path / "s.sqlite")},
                    bill=BILL)
    # 09:00–10:00 Tokyo on Dec 1 (day price 40): the meter swings ±10 kW every 5 min (net 0
    # over each slot), the battery discharges 4 kW throughout
    store = _store(tmp_path, cfg, lambda k: 10_000.0 if (k // 300) % 2 == 0 else -10_000.0, lambda k: 4_000.0,
                   "2026-12-01T00:00:00Z", 3600)
    try:
        b = site_bill(store, cfg, "day", date(2026, 12, 1))
    finally:
        store.close()
    a = b["actual"]
    # integrating each sign separately: ≈ 5 kWh imported and ≈ 5 kWh exported (a net meter says 0 and 0)
    assert a["import_kwh"] == pytest.approx(5.0, rel=0.02) and a["export_kwh"] == pytest.approx(5.0, rel=0.02)
    imp, exp = a["import_kwh"], a["export_kwh"]
    assert a["energy"] == pytest.approx(imp * 40.0)
    assert a["fuel_adjustment"] == pytest.approx(-imp) and a["renewable_levy"] == pytest.approx(4.0 * imp)
    assert a["sold"] == pytest.approx(16.0 * exp) and a["basic_charge"] == 0.0  # no demand charge on a day bill
    # without the battery its 4 kWh would have come out of the export first
    nb = b["no_battery"]
    assert nb["export_kwh"] == pytest.approx(exp - 4.0, abs=0.15) and nb["import_kwh"] >= imp - 1e-9
    assert b["savings"] == pytest.approx(nb["total"] - a["total"]) and b["savings"] > 0
    assert b["price_version"] == "tou:1" and b["sell_scheme"] == "fit"


def test_a_month_bill_carries_the_demand_charge_lowered_by_the_battery(tmp_path):
    cfg = make_site("metered-battery", storage={"backend": "embedded", "path": str(tmp_path / "s.sqlite")},
                    bill=BILL)
    # one hour on Dec 2: 30 kW import while the battery gives 20 kW (without it: 50 kW)
    store = _store(tmp_path, cfg, lambda k: 30_000.0, lambda k: 20_000.0, "2026-12-02T03:00:00Z", 3600, 30)
    try:
        m = site_bill(store, cfg, "month", date(2026, 12, 15))
    finally:
        store.close()
    a, nb = m["actual"], m["no_battery"]
    assert a["peak_kw"] == pytest.approx(30.0, rel=0.01) and nb["peak_kw"] == pytest.approx(50.0, rel=0.01)
    per_kw = 2000.0 * (185 - 95) / 100  # 1800 yen per kW-month
    assert a["contract_kw"] == pytest.approx(a["peak_kw"]) and a["basic_charge"] == pytest.approx(per_kw * a["peak_kw"])
    assert nb["basic_charge"] - a["basic_charge"] == pytest.approx(per_kw * 20.0, rel=0.01)
    assert m["slots"] == 31 * 48


def test_per_home_bills_and_unknown_home(tmp_path):
    cfg = make_site("metered-battery", storage={"backend": "embedded", "path": str(tmp_path / "s.sqlite")},
                    devices=[{"id": "m1", "kind": "meter", "register_map": "m", "home": "h001"},
                             {"id": "b1", "kind": "battery", "register_map": "m", "home": "h001",
                              "ratings": {"capacity_wh": 10000, "max_charge_w": 5000, "max_discharge_w": 5000}}])
    store = _store(tmp_path, cfg, lambda k: 1_000.0, lambda k: 500.0, "2026-12-01T00:00:00Z", 1800)
    try:
        b = site_bill(store, cfg, "day", date(2026, 12, 1), home="h001")
        with pytest.raises(KeyError):
            site_bill(store, cfg, "day", date(2026, 12, 1), home="h999")
    finally:
        store.close()
    assert b["home"] == "h001" and b["actual"]["import_kwh"] == pytest.approx(0.5, rel=0.02)
    assert b["no_battery"]["import_kwh"] == pytest.approx(0.75, rel=0.02)


def test_period_bounds():
    a, e = period_bounds("month", date(2026, 12, 15), "Asia/Tokyo")
    assert (a.isoformat(), e.isoformat()) == ("2026-11-30T15:00:00+00:00", "2026-12-31T15:00:00+00:00")
    with pytest.raises(ValueError):
        period_bounds("year", date(2026, 12, 15), "Asia/Tokyo")
