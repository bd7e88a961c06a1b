"""ev-rush-ocpp: OCPP stations (1.6J and 2.0.1) over real WebSockets in a scenario, drivers' needs,
the import limit, and a grid outage during which no car draws from the island."""
import pytest

from .conftest import run_cached


@pytest.mark.timeout(300)
def test_ev_rush_with_ocpp_stations_and_an_outage():
    r = run_cached("ev-rush-ocpp")
    assert r.passed, r.failures
    k, rec = r.kpis, r.record
    assert k["ev_unserved_kwh"] <= 0.1  # 4 × 12 kWh by each driver's departure (22:00)
    assert (rec["ev_w"] * rec["dt_s"]).sum() / 3.6e6 >= 4 * 12 - 0.5  # the record samples once a minute
    assert k["import_over_limit_minutes"] == 0 and k["max_import_w"] <= 30_000
    out = rec[rec["outage"]]
    assert len(out) >= 25  # the whole 30-minute outage is in the record
    # every station paused for the whole outage (far longer than the changeover's 2 min
    # interruption): the central system took their limits to 0 — the reserve never feeds cars
    assert (out["ev_w"] == 0).all() and k["ev_from_battery_kwh"] == 0
    before = rec[rec.index < out.index[0]]
    after = rec[rec.index > out.index[-1]]
    assert before["ev_w"].max() > 0 and after["ev_w"].max() > 6_400  # charging before, resumed after
    assert k["reserve_violations"] == 0
