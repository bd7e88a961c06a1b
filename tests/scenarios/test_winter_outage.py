"""``winter-outage-72h`` shortened to its first 12 h (the full 76 h run is in ``bench/hil.py``):
snow on the panels, the grid down from hour 1, two EVs paused, non-critical loads shed in
priority order, the shelter's critical load fully served."""
from __future__ import annotations

import pytest

from tests.scenarios.conftest import run_cached
from vpp.control.autonomy import check_reserve


@pytest.mark.timeout(180)
def test_winter_outage_first_12_h():
    r = run_cached("winter-outage-72h", hours=12)
    k, rec = r.kpis, r.record
    out = rec["outage"].astype(bool)
    # the site is sized by `vpp reserve check`: 72 h at the floor without any PV
    chk = check_reserve(r.config)
    assert chk.meets_no_pv and chk.hours_no_pv >= 72.0
    assert k["outage_minutes"] >= 11 * 60 - 1
    assert k["critical_served_ratio"] == 1.0 and k["critical_demand_kwh"] == pytest.approx(0.4 * 11, rel=0.02)
    assert k["critical_hours_served"] == pytest.approx(11.0, abs=0.05)  # to the last step recorded
    # EV charging stopped with the grid (before: they charged) and took nothing from the battery
    assert rec.loc[~out, "ev_w"].max() > 0 and rec.loc[out, "ev_w"].max() == 0.0
    assert k["ev_from_battery_kwh"] == 0.0
    # shed in priority order, the least important first; the critical circuit never
    assert r.shed_order == ["hall-heating", "kitchen", "office"]
    assert (rec.loc[out, "crit_w"] == 400.0).all()
    # snow: no PV on the first day
    assert k["pv_kwh"] < 1.0  # only the trace noise: a clear January day gives ~150 kWh
    assert k["reserve_violations"] == 0 and k["soc_min"] > r.config.devices_of("battery")[0].ratings.soc_min
