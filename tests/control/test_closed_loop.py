"""Closed loop over a simulated day: simulated devices on loopback Modbus TCP, the real
driver fleet, the embedded store (through the telemetry pipeline), the real optimiser and
the control loop, driven at simulated time by :func:`run_simulated`.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import optimizer
from drivers.fleet import DriverFleet
from simulators.clock import SimClock
from simulators.site import SimulatedSite, with_free_ports
from tests.testkit.sites import make_site
from vpp.control.loop import Controller
from vpp.control.scheduler import SimulatedTelemetry, run_simulated
from vpp.storage import TelemetryPipeline, open_store

START = datetime(2026, 6, 21, 15, 0, tzinfo=timezone.utc)  # 00:00 JST, Monday 22 June
FAIL_FROM, FAIL_TO = START + timedelta(hours=9), START + timedelta(hours=12)


def site_config(tmp_path):
    """The shelter (24-h plans) with its store in ``tmp_path``."""
    return make_site("shelter",
                     storage={"backend": "embedded", "path": str(tmp_path / "vpp.sqlite"), "flush_interval_s": 0.05})


class FlakyOptimiser:
    """The real optimiser, made to fail while the simulated clock is inside a window."""

    def __init__(self, clock):
        self.clock, self.calls, self.failed = clock, 0, 0

    def __call__(self, problem):
        self.calls += 1
        if FAIL_FROM <= self.clock.now() < FAIL_TO:
            self.failed += 1
            raise optimizer.SolveError("forced solver error")
        return optimizer.solve(problem)


def plan_soc(plan, t):
    """SoC the plan expects at ``t`` (linear within a slot)."""
    s = plan.schedule
    x = (t - s.start).total_seconds() / s.slot_s
    k = int(x)
    before = plan.problem.batteries[0].soc0 if k == 0 else s.soc["bat1"][k - 1]
    return before + (x - k) * (s.soc["bat1"][k] - before)


@pytest.mark.scenario  # 24 simulated hours of the closed loop: a whole scenario
@pytest.mark.timeout(120)
async def test_simulated_day(tmp_path):
    config = with_free_ports(site_config(tmp_path))
    clock = SimClock(START, speed=0)
    site = SimulatedSite(config, clock, auto_ev_sessions=False)
    site.models["bat1"].soc = 0.40
    store = open_store(config.storage, site=config.site.name, connect=False)
    pipeline = TelemetryPipeline(store, config.storage, spool_dir=tmp_path / "spool")
    fleet = DriverFleet(config, clock=clock)  # snapshots carry simulated time
    telemetry = SimulatedTelemetry(fleet, sink=pipeline.submit)
    flaky = FlakyOptimiser(clock)
    ctl = Controller(config, fleet=telemetry, clock=clock, store=store, solve=flaky, stale_input_s=90)
    log = []

    def on_step(now, decisions):
        d = decisions[0]
        log.append(dict(t=now, ts=telemetry.latest("bat1").ts, soc=telemetry.latest("bat1").values["soc"], source=d.source, sp=d.setpoint_w,
                        expected=plan_soc(ctl.plan, now) if ctl.plan and d.source == "plan" else np.nan,
                        fallback=ctl.alarms.is_active("fallback"), plan_alarm=ctl.alarms.is_active("plan"),
                        state=ctl.reserve["bat1"].state.value))

    await site.start()
    await pipeline.start()
    try:
        steps = await run_simulated(ctl, START + timedelta(hours=24), site.step,
                                    refresh=telemetry.refresh, on_step=on_step)
        assert await pipeline.flushed(timeout=10)
        stored = store.count(device="bat1")
    finally:
        await fleet.stop()
        await pipeline.stop()
        await site.stop()
        store.close()

    assert steps == 24 * 60
    assert all(r["ts"] == r["t"] for r in log)  # the fleet stamps simulated time
    soc = np.array([r["soc"] for r in log])
    src = [r["source"] for r in log]
    t = [r["t"] for r in log]
    # the reserve is never violated (the day starts 10 points above the 30 % floor)
    assert soc.min() >= 0.30 - 0.005, soc.min()
    assert soc.max() > 0.6  # the plan charges from midday PV
    # SoC follows the plan while the plan is in charge
    dev = np.abs(soc - np.array([r["expected"] for r in log]))
    assert np.nanmax(dev) < 0.03, np.nanmax(dev)
    # fallback engages once the plan goes stale during the solver outage, releases after it
    assert flaky.failed >= 5
    in_window = [i for i, x in enumerate(t) if FAIL_FROM + timedelta(seconds=3600 + 120) <= x < FAIL_TO]
    assert in_window and all(src[i] == "fallback" and log[i]["fallback"] for i in in_window)
    assert all(log[i]["plan_alarm"] for i in in_window)
    after = [i for i, x in enumerate(t) if x >= FAIL_TO + timedelta(minutes=2)]
    assert all(src[i] == "plan" for i in after) and not log[-1]["fallback"]
    assert src[:int(9 * 60)].count("plan") == 9 * 60
    # writes are leases: the simulated battery carries the revert timeout
    assert site.models["bat1"].revert_s == config.optimiser.lease_s
    # telemetry reached the store
    assert stored >= 24 * 60
