"""Device models and the site power balance with a manual clock (no network)."""
from __future__ import annotations

import pytest

from simulators.site import SimulatedSite, with_free_ports
from simulators.devices import BatteryModel, EvChargerModel, MeterModel, PvModel
from vpp.config import TcpConnection


def _balance_ok(site: SimulatedSite) -> None:
    m = site.models
    expected = (sum(site.load_w.values()) + m["ev1"].power_w - m["pv1"].power_w
                - m["bat1"].power_w)
    assert m["meter1"].power_w == pytest.approx(expected)
    assert site.grid_power_w() == pytest.approx(expected)


def test_site_sums_devices_into_the_grid_meter(config, clock):
    site = SimulatedSite(config, clock, auto_ev_sessions=False)
    site.step(1.0)
    pv = site.models["pv1"]
    assert isinstance(pv, PvModel) and 3000 < pv.power_w <= 5000  # June noon, clear sky
    assert sum(site.load_w.values()) > 0
    bat = site.models["bat1"]
    assert isinstance(bat, BatteryModel)
    bat.apply_write({"setpoint_w": -2000.0, "setpoint_enabled": 1})
    ev = site.models["ev1"]
    assert isinstance(ev, EvChargerModel)
    ev.plug(need_wh=5000.0)
    site.step(60.0)
    assert bat.power_w == -2000.0 and ev.power_w > 0
    _balance_ok(site)
    meter = site.models["meter1"]
    assert isinstance(meter, MeterModel)
    assert meter.import_energy_wh + meter.export_energy_wh > 0


def test_cloud_trace_scales_pv(config, clock):
    clear = SimulatedSite(config, clock, auto_ev_sessions=False)
    clear.step(1.0)
    cloudy = SimulatedSite(config, clock, cloud=lambda now: 0.3, auto_ev_sessions=False)
    cloudy.step(1.0)
    c, k = cloudy.models["pv1"].power_w, clear.models["pv1"].power_w
    # 30 % of the irradiance; slightly more than 30 % of the power as the cells run cooler
    assert 0.3 * k < c < 0.36 * k


def test_pv_limit_write_caps_output_and_reverts(config, clock):
    site = SimulatedSite(config, clock, auto_ev_sessions=False)
    site.step(1.0)
    pv = site.models["pv1"]
    pv.apply_write({"power_limit_w": 1000.0, "power_limit_revert_s": 120.0})
    site.step(60.0)
    assert pv.power_w > 2000.0  # not enabled yet
    pv.apply_write({"power_limit_enabled": 1})
    site.step(60.0)
    assert pv.power_w == pytest.approx(1000.0) and pv.writes == 2
    assert pv.values()["power_limit_enabled"] == 1
    site.step(120.0)
    assert pv.power_w > 2000.0
    assert pv.values()["power_limit_enabled"] == 0


def test_battery_setpoint_reverts_to_idle(config, clock):
    site = SimulatedSite(config, clock, auto_ev_sessions=False)
    site.step(1.0)
    bat = site.models["bat1"]
    bat.apply_write({"setpoint_w": 3000.0, "setpoint_revert_s": 300.0, "setpoint_enabled": 1})
    site.step(240.0)
    assert bat.power_w == 3000.0
    soc = bat.soc
    site.step(120.0)  # the timeout lapses during this step
    assert bat.power_w == 0.0 and bat.values()["setpoint_w"] == 0.0
    assert bat.values()["setpoint_enabled"] == 0
    site.step(60.0)
    assert bat.soc < soc  # discharged until the lapse, then flat
    soc = bat.soc
    site.step(600.0)
    assert bat.soc == soc


def test_battery_stops_at_soc_limits(config, clock):
    site = SimulatedSite(config, clock, auto_ev_sessions=False)
    bat = site.models["bat1"]
    site.step(1.0)
    bat.apply_write({"setpoint_w": 4000.0, "setpoint_enabled": 1})
    site.step(3 * 3600.0)
    assert bat.soc == pytest.approx(0.1) and bat.power_w == 0.0
    bat.apply_write({"setpoint_w": -4000.0})
    site.step(3 * 3600.0)
    assert bat.soc == pytest.approx(0.9) and bat.power_w == 0.0
    v = bat.values()
    # 0.8 × 10 kWh through the cells: AC charged = 8000 / 0.95, discharged = 4000 × 0.95
    assert v["charge_energy_wh"] == pytest.approx(8000 / 0.95, rel=1e-6)
    assert v["discharge_energy_wh"] == pytest.approx(4000 * 0.95, rel=1e-6)


def test_ev_session_reaches_need_and_stops(config, clock):
    site = SimulatedSite(config, clock, auto_ev_sessions=False)
    ev = site.models["ev1"]
    site.step(1.0)
    assert ev.values()["state"] == 1 and ev.values()["plugged"] == 0  # A: no car
    ev.plug(need_wh=3000.0, car_max_w=7400.0)
    ev.apply_write({"current_limit_a": 16.0})
    site.step(1.0)
    assert ev.values()["state"] == 3 and ev.power_w == pytest.approx(16 * 230)  # C
    site.step(2 * 3600.0)
    v = ev.values()
    assert v["session_energy_wh"] == pytest.approx(3000.0)
    assert v["state"] == 2 and v["power_w"] == 0.0 and v["plugged"] == 1  # B: done
    ev.apply_write({"current_limit_a": 0.0})
    assert ev.values()["current_limit_a"] == 0.0


def test_auto_ev_sessions_are_seeded_and_cars_depart(config, clock):
    from simulators.clock import SimClock

    runs = []
    for seed in (3, 3, 4):
        site = SimulatedSite(config, SimClock(clock.now(), speed=0), seed=seed)
        ev = site.models["ev1"]
        states = set()
        site.step(1.0)
        for _ in range(3 * 24 * 4):
            site.step(900.0)
            states.add(ev.values()["state"])
        runs.append((ev.energy_wh, states))
    assert runs[0] == runs[1]  # same seed, same sessions
    energy, states = runs[0]
    assert energy > 0 and {1, 3} <= states  # cars came, charged and left
    assert runs[2][0] != energy


def test_grid_outage_islands_the_site(config, clock):
    site = SimulatedSite(config, clock, auto_ev_sessions=False)
    clock.advance(9 * 3600)  # 21:00 JST: no PV, evening load
    site.step(1.0)
    site.grid_outage = True
    site.step(60.0)
    load = sum(site.load_w.values())
    assert site.models["meter1"].power_w == 0.0 and site.grid_power_w() == 0.0
    assert site.models["bat1"].power_w == pytest.approx(load)  # battery covers the load
    assert site.island_imbalance_w == pytest.approx(0.0, abs=1e-6)
    site.grid_outage = False
    site.step(60.0)
    assert site.models["bat1"].power_w == 0.0
    _balance_ok(site)


def test_with_free_ports_keeps_shared_connections(config):
    cfg = with_free_ports(config)
    ports = {d.id: d.connection.port for d in cfg.devices}
    assert isinstance(cfg.devices[0].connection, TcpConnection)
    assert ports["pv1"] == ports["bat1"]
    assert len({ports["pv1"], ports["meter1"], ports["ev1"]}) == 3
    assert config.devices[0].connection.port == 15020  # original untouched


def test_ev_fault_reports_state_f_and_stops(config, clock):
    site = SimulatedSite(config, clock, auto_ev_sessions=False)
    ev = site.models["ev1"]
    site.step(1.0)
    ev.plug(need_wh=10_000.0)
    site.step(10.0)
    assert ev.power_w > 0
    ev.fault = True
    site.step(10.0)
    assert ev.values()["state"] == 6 and ev.power_w == 0.0
