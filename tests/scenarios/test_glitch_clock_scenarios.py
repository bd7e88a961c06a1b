"""meter-glitch and clock-step: the reserve survives a faulty meter, and a stepped wall clock
replays nothing (both short enough to run in full)."""
from __future__ import annotations

import pytest

from tests.scenarios.conftest import run_cached


@pytest.mark.timeout(180)
def test_meter_glitches_never_unlock_the_reserve():
    r = run_cached("meter-glitch")
    assert r.passed, r.failures
    k = r.kpis
    assert k["reserve_outage_s"] == 0 and k["outage_minutes"] == 0
    assert k["reserve_violations"] == 0
    socs = r.record["soc:bat1"] - r.record["floor:bat1"]
    assert socs.min() >= -0.02  # min SoC vs floor: at most the hysteresis below it
    assert (r.record["state:bat1"] != "outage").all()
    assert k["meter_alarms"] >= 1  # the implausible readings were flagged


@pytest.mark.timeout(180)
def test_clock_steps_replay_nothing():
    r = run_cached("clock-step")
    assert r.passed, r.failures
    k = r.kpis
    assert k["dispatch_activations"] == 1 and 59 <= k["dispatch_minutes"] <= 61
    assert k["override_activations"] == 1 and 29 <= k["override_minutes"] <= 31
    assert k["storm_activations"] == 1
    assert k["clock_alarms"] >= 1
    steps = [e for e in r.events if "wall clock steps" in e["event"]]
    assert len(steps) == 4
