"""Outage detection: classification of one meter sample and the debounced detector."""
from datetime import timedelta

import pytest

from drivers.protocols import DeviceKind, Snapshot
from vpp.config import OutageDetection
from vpp.control.image import read_image
from vpp.control.outage import ISLAND_FIELD, OutageDetector, Sample, classify

from .test_loop import T0, Clock, cfg, set_readings
from .test_seams import CountingTable

CFG = OutageDetection()


@pytest.mark.parametrize("v, hz, want", [
    (0.0, 0.0, Sample.DEAD), (2.0, 0.3, Sample.DEAD),
    (101.0, 50.0, Sample.LIVE), (202.0, 60.0, Sample.LIVE), (230.0, 50.0, Sample.LIVE),
    (101.0, 0.0, Sample.BAD), (0.0, 50.0, Sample.BAD), (10.1, 50.0, Sample.BAD), (101.0, 500.0, Sample.BAD),
    (2300.0, 50.0, Sample.BAD), (-5.0, 50.0, Sample.BAD), (40.0, 30.0, Sample.BAD),
    (float("nan"), 50.0, Sample.NONE), (None, None, Sample.NONE),
])
def test_classify(v, hz, want):
    assert classify({"voltage_v": v, "frequency_hz": hz}, CFG)[0] is want


def test_islanding_flag_is_a_dead_sample():
    assert classify({"voltage_v": 230.0, "frequency_hz": 50.0, ISLAND_FIELD: 1}, CFG)[0] is Sample.DEAD
    assert classify({}, CFG, islanded=True)[0] is Sample.DEAD
    assert classify({"voltage_v": 230.0, "frequency_hz": 50.0, ISLAND_FIELD: 0}, CFG)[0] is Sample.LIVE


def test_detector_debounces_both_ways_and_reports():
    events = []
    det = OutageDetector(CFG, on_event=events.append)
    dead, live = {"voltage_v": 0.0, "frequency_hz": 0.0}, {"voltage_v": 101.0, "frequency_hz": 50.0}
    t = T0
    assert not det.update(t, dead) and not det.update(t, dead)  # the same sample twice counts once
    assert not det.update(t + timedelta(seconds=5), dead)       # 2 samples
    assert not det.update(t + timedelta(seconds=6), {"voltage_v": None})  # no reading: says nothing
    assert det.update(t + timedelta(seconds=10), dead)          # 3 samples over 10 s
    assert [e.kind for e in events] == ["outage_start"] and events[0].since == t
    for k in (11, 12):
        assert det.update(t + timedelta(seconds=k), live)
    assert det.update(t + timedelta(seconds=13), live)          # 3 samples but only 2 s
    assert det.update(t + timedelta(seconds=15), {"voltage_v": 101.0, "frequency_hz": 0.0})  # BAD: run broken
    for k in (16, 21, 26):
        det.update(t + timedelta(seconds=k), live)
    assert not det.outage
    assert [e.kind for e in events] == ["outage_start", "bad_reading", "reading_ok", "outage_end"]


def test_few_samples_over_long_time_or_many_over_short_time_are_not_enough():
    det = OutageDetector(CFG)
    dead = {"voltage_v": 0.0, "frequency_hz": 0.0}
    assert not det.update(T0, dead) or det.update(T0 + timedelta(seconds=60), dead)
    assert not det.outage  # 2 samples over 60 s
    det2 = OutageDetector(CFG)
    assert not any(det2.update(T0 + timedelta(seconds=0.1 * k), dead) for k in range(50))  # 50 samples over 4.9 s


def test_image_reads_the_inverters_islanding_flag():
    c = cfg()
    t = CountingTable()
    from vpp.control.loop import Controller
    ctl = Controller(c, fleet=t, clock=Clock(T0))
    set_readings(ctl, soc=0.6, grid_w=0.0, age_s=1.0)
    one = OutageDetector(OutageDetection(samples=1, confirm_s=0.0))
    assert read_image(c, T0, fleet=t, max_age_s=30.0, detector=one).grid_ok
    t.snaps["bat1"] = Snapshot("bat1", DeviceKind.BATTERY, T0, {"soc": 0.6, ISLAND_FIELD: 1.0})
    t.snaps["meter1"] = Snapshot("meter1", DeviceKind.METER, T0, {"power_w": 0.0, "voltage_v": 202.0,
                                                                  "frequency_hz": 50.0})
    assert not read_image(c, T0, fleet=t, max_age_s=30.0, detector=one).grid_ok
