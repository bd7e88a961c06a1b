"""The control loop's seams: the process image (every device read once per step), the pure
problem builder and the site forecast, each usable without a Controller."""
from collections import Counter
from datetime import timedelta

import numpy as np
import pytest

from drivers.protocols import DeviceKind, Quality, Snapshot
from vpp.config import OutageDetection
from vpp.control.image import read_image
from vpp.control.outage import OutageDetector
from vpp.control.problem import build_problem, problem_horizon, slot_times
from vpp.control.reserve import StormMode, battery_floors, floor_trajectory, window_floor
from vpp.forecast.pv import BiasCorrector
from vpp.forecast.site import forecast_site
from vpp.slots import floor_time

from vpp.control.loop import Controller

from .test_ev_grid import RecTable, set_ev
from .test_loop import T0, Clock, cfg, set_readings


class CountingTable(RecTable):
    def __init__(self):
        super().__init__()
        self.reads = Counter()

    def latest(self, device_id):
        self.reads[device_id] += 1
        return super().latest(device_id)


def test_image_judges_each_reading_once():
    c = cfg()
    t = CountingTable()
    ctl = Controller(c, fleet=t, clock=Clock(T0))
    set_readings(ctl, soc=0.6, grid_w=5000.0, age_s=1.0)
    t.snaps["bat1"] = Snapshot("bat1", DeviceKind.BATTERY, T0 - timedelta(seconds=90), {"soc": 0.6})
    img = read_image(c, T0, fleet=t, max_age_s=30.0)
    assert set(t.reads.values()) == {1}
    assert img.snapshot("bat1") == (None, "reading 90 s old") and np.isnan(img.soc("bat1"))
    assert img.reading("bat1").raw is t.snaps["bat1"]  # the raw snapshot is kept
    assert img.meter == c.grid_meter().id and img.grid_w == 5000.0 and img.grid_ok
    assert img.reading("ev1").why == "no reading"
    assert not read_image(c, T0, fleet=t, max_age_s=30.0, outage=True).grid_ok
    t.snaps["meter1"] = Snapshot("meter1", DeviceKind.METER, T0, {"power_w": 0.0, "voltage_v": 0.0,
                                                                  "frequency_hz": 0.0})
    one = OutageDetector(OutageDetection(samples=1, confirm_s=0.0))  # no debounce: one sample decides
    assert not read_image(c, T0, fleet=t, max_age_s=30.0, detector=one).grid_ok  # a dead grid on a live meter
    assert read_image(c, T0, fleet=t, max_age_s=30.0).grid_ok  # no detector: the grid is taken as up
    t.snaps["meter1"] = Snapshot("meter1", DeviceKind.METER, T0, {"voltage_v": 0.0}, Quality.UNAVAILABLE, "down")
    fresh = OutageDetector(OutageDetection(samples=1, confirm_s=0.0))
    assert read_image(c, T0, fleet=t, max_age_s=30.0, detector=fresh).grid_ok  # an unusable meter says nothing


def test_image_reads_the_store_without_a_fleet():
    class Store:
        def latest(self, device_id):
            return {"bat1": {"bat1": Snapshot("bat1", DeviceKind.BATTERY, T0, {"soc": 0.42})}}.get(device_id, {})

    img = read_image(cfg(), T0, store=Store(), max_age_s=30.0)
    assert img.soc("bat1") == 0.42 and img.reading("meter1").why == "no reading"


async def test_dispatch_step_reads_every_device_once():
    ctl = Controller(cfg(), fleet=CountingTable(), clock=Clock(T0))
    set_readings(ctl, soc=0.6, grid_w=40_000.0)  # the grid-limit step reads the meter and EV too
    ctl.plan_job()
    set_ev(ctl, "ev1", plugged=True, power_w=7000.0)  # a car the plan does not know: re-plan first
    ctl.fleet.reads.clear()
    await ctl.dispatch_job()
    assert [s.charger_id for s in ctl.plan.problem.evs] == ["ev1"]  # re-planned on the same image
    assert ctl.fleet.reads and set(ctl.fleet.reads.values()) == {1}


def test_build_problem_is_pure_and_maps_the_config_vocabulary():
    c = cfg()
    fc, _ = forecast_site(c, T0)
    h = problem_horizon(c, fc, T0)
    assert h.start == floor_time(T0, c.optimiser.slot_s) and h.n == len(fc.index)
    storm = StormMode(lead=timedelta(hours=4))
    storm.on(T0, 0.9, T0 + timedelta(hours=6))
    floors = battery_floors(c, slot_times(h), storm)
    soc = {"bat1": 0.55}
    a = build_problem(c, fc, soc, floors, start=T0)
    b = build_problem(c, fc, soc, floors, start=T0)
    assert a.horizon == b.horizon and np.array_equal(a.pv_w, b.pv_w)
    bat = a.batteries[0]
    r = c.device("bat1").ratings
    assert (bat.eta_charge, bat.eta_discharge) == (r.charge_efficiency, r.discharge_efficiency)
    assert bat.soc0 == 0.55 and np.array_equal(bat.floor, floors["bat1"]) and bat.floor[-1] == pytest.approx(0.9)
    assert a.vpp is None and a.evs == ()
    later = build_problem(c, fc, soc, {k: v[2:] for k, v in floors.items()}, start=T0 + timedelta(hours=1))
    assert later.horizon.n == h.n - 2 and np.array_equal(later.pv_w, a.pv_w[2:])
    assert build_problem(c, fc, soc, floors).horizon.start == fc.index[0]


def test_controller_problem_equals_the_pure_builder():
    ctl = Controller(cfg(), fleet=CountingTable(), clock=Clock(T0))
    set_readings(ctl, soc=0.6)
    ctl.storm.on(T0, 0.8, T0 + timedelta(hours=3))
    fc = ctl.forecast_job()
    p = ctl.build_problem(T0, fc, {"bat1": 0.6})
    h = problem_horizon(ctl.config, fc, T0)
    q = build_problem(ctl.config, fc, {"bat1": 0.6}, battery_floors(ctl.config, slot_times(h), ctl.storm), start=T0)
    assert np.array_equal(p.batteries[0].floor, q.batteries[0].floor)
    assert np.array_equal(p.load_w, q.load_w) and p.options == q.options


def test_window_floor_ramps_holds_and_releases():
    times = [T0 + timedelta(hours=k) for k in range(10)]
    f = window_floor(0.3, times, 0.9, [(T0 + timedelta(hours=4), T0 + timedelta(hours=7))], timedelta(hours=2))
    assert f.tolist() == pytest.approx([0.3, 0.3, 0.3, 0.6, 0.9, 0.9, 0.9, 0.3, 0.3, 0.3])
    storm = StormMode(lead=timedelta(hours=2))
    storm.on(T0, 0.9, T0 + timedelta(hours=4))
    # open-ended, a warning window is storm mode from its start
    open_ = window_floor(0.3, times, 0.9, [(T0 + timedelta(hours=4), None)], timedelta(hours=2))
    assert open_.tolist() == pytest.approx(floor_trajectory(0.3, times, storm).tolist())


def test_forecast_site_reports_a_store_fault_and_keeps_the_bias():
    class Broken:
        def query(self, **kw):
            raise ConnectionError("store down")

    bias = BiasCorrector()
    fc, out = forecast_site(cfg(), T0, store=Broken(), bias=bias)
    assert fc.load_history_error == "store down" and not fc.load_from_history
    assert out is bias and fc.weather_fallback
    ctl = Controller(cfg(), clock=Clock(T0), store=Broken())
    ctl.forecast_job()
    assert ctl.alarms.get("forecast:load").reason == "load history unavailable: store down"
