"""Frozen-value detection on the simulated clock (accelerated hardware-in-the-loop runs).

A simulated minute passes between polls while only milliseconds of wall time do: a fleet on
the simulated clock flags a frozen device after ``stale_after_s`` of *simulated* time; a
fleet on the monotonic clock cannot (its frozen time is the milliseconds of wall time).
"""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from drivers.device import StalePolicy
from drivers.fleet import DriverFleet
from drivers.protocols import Quality
from simulators.clock import SimClock
from simulators.scenarios.runner import run_scenario
from simulators.scenarios.spec import parse_scenario
from simulators.site import SimulatedSite
from driver_helpers import NOON_JST, fast_config


async def test_frozen_device_is_flagged_after_the_configured_simulated_time():
    cfg = fast_config("community-centre.yaml")
    clock = SimClock(NOON_JST, speed=0)
    site = SimulatedSite(cfg, clock, auto_ev_sessions=False)
    policy = StalePolicy(stale_after_s=180.0, stale_min_wh=20.0)
    await site.start()
    sim = DriverFleet(cfg, stale=policy, clock=clock)
    wall = DriverFleet(cfg, stale=policy)  # same devices, frozen time on the monotonic clock
    try:
        await sim.poll_once()
        await sim.device("bat1").set_power(20_000)
        for _ in range(5):  # healthy and moving: never stale, whatever the step
            site.step(60)
            assert (await sim.poll_once())["bat1"].quality is Quality.GOOD
            await wall.poll_once()
        await site.inject("bat1", "frozen")
        frozen_at = clock.now()
        flagged = None
        for _ in range(10):
            site.step(60)
            snap = (await sim.poll_once())["bat1"]
            blind = (await wall.poll_once())["bat1"]
            assert blind.quality is Quality.GOOD  # milliseconds of wall time: blind
            assert snap.ts == clock.now()  # snapshots carry simulated time
            if snap.quality is Quality.STALE:
                flagged = snap
                break
            assert snap.ts - frozen_at < timedelta(seconds=policy.stale_after_s)
        assert flagged is not None and "unchanged" in flagged.reason
        # caught after the configured time, within one poll (a simulated minute) of it
        assert timedelta(seconds=180) <= flagged.ts - frozen_at <= timedelta(seconds=180 + 60)
        await site.inject("bat1", None)
        site.step(60)
        assert (await sim.poll_once())["bat1"].quality is Quality.GOOD
    finally:
        await sim.stop()
        await wall.stop()
        await site.stop()


@pytest.mark.timeout(60)
def test_scenario_runner_flags_a_frozen_battery_on_simulated_time():
    """The runner's fleet uses its SimClock: a battery frozen for 30 simulated minutes (at
    thousands × real time) idles the controller ("inputs-stale") within a minute of
    simulated time, for the whole fault, and recovers when the values move again."""
    sc = parse_scenario({
        "name": "frozen-battery", "config": "community-centre", "start": "2026-06-21T02:00:00Z",
        "duration_h": 1.5, "initial_soc": 0.6,
        "dispatches": [{"from": 0.25, "to": 1.5, "power_w": 20000}],  # the battery moves
        "faults": [{"at": 0.5, "device": "bat1", "fault": "frozen", "clear": 1.0}],
    })
    r = asyncio.run(run_scenario(sc))
    rec = r.record
    t0 = rec.index[0]
    freeze, clear = t0 + timedelta(hours=0.5), t0 + timedelta(hours=1.0)
    stale = rec.index[(rec["source:bat1"] == "inputs-stale").to_numpy()]
    assert len(stale) > 0, "frozen battery never flagged"
    # stale_after_s is 60 s (default policy); one 60 s control step of polling latency
    assert freeze < stale[0] <= freeze + timedelta(seconds=60 + 60)
    during = rec[(rec.index >= stale[0]) & (rec.index < clear)]
    assert (during["source:bat1"] == "inputs-stale").all()
    assert (rec.loc[rec.index < freeze, "source:bat1"] != "inputs-stale").all()
    assert (rec.loc[rec.index > clear + timedelta(minutes=2), "source:bat1"] != "inputs-stale").all()
    assert 28 <= r.kpis["inputs_stale_minutes"] <= 31
    assert r.kpis["reserve_violations"] == 0
    assert r.speedup > 100  # an accelerated run, not wall time
