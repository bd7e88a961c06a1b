"""The control loop against simulated devices on loopback Modbus at simulated time: an EV
charged by its assumed departure, and a grid outage seen through the grid meter alone."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from drivers.fleet import DriverFleet
from simulators.clock import SimClock
from simulators.site import SimulatedSite, with_free_ports
from vpp.config import parse_config
from vpp.control import ev as evpolicy
from vpp.control.loop import Controller
from vpp.control.reserve import ReserveState
from vpp.control.scheduler import SimulatedTelemetry, run_simulated

from .test_closed_loop import site_config

EVENING = datetime(2026, 6, 22, 9, 0, tzinfo=timezone.utc)  # 18:00 JST


def with_charger(tmp_path, **optimiser):
    raw = site_config(tmp_path).model_dump(mode="json")
    raw["devices"].append({"id": "ev1", "kind": "ev_charger", "register_map": "evse_phoenix",
                           "connection": {"port": 15024, "device_id": 1}, "timeout_s": 0.5,
                           "ratings": {"power_w": 7400, "min_current_a": 6, "max_current_a": 32}})
    raw["optimiser"].update(optimiser)
    return with_free_ports(parse_config(raw))


async def run(config, start, until, prepare=None, on_step=None, advance=None):
    clock = SimClock(start, speed=0)
    site = SimulatedSite(config, clock, auto_ev_sessions=False)
    site.models["bat1"].soc = 0.5
    fleet = DriverFleet(config, clock=clock)
    telemetry = SimulatedTelemetry(fleet)
    ctl = Controller(config, fleet=telemetry, clock=clock, stale_input_s=300)
    await site.start()
    try:
        site.step(1.0)
        if prepare is not None:
            prepare(site)
        await run_simulated(ctl, until, advance(site) if advance else site.step,
                            refresh=telemetry.refresh, on_step=on_step and (lambda t, d: on_step(t, ctl, site)))
    finally:
        await fleet.stop()
        await site.stop()
    return ctl, site


@pytest.mark.timeout(90)
async def test_ev_gets_its_energy_by_departure_at_night_prices(tmp_path):
    config = with_charger(tmp_path, dispatch_interval_s=120, lease_s=360)
    departure = evpolicy.departure_for(EVENING, config.site.timezone)  # 07:30 JST
    log = []

    def plug(site):  # the car wants more than the policy's 15 kWh; nobody tells the controller
        site.models["ev1"].plug(need_wh=30_000, depart=departure + timedelta(hours=1))

    def on_step(t, ctl, site):
        log.append((t, site.models["ev1"].session_energy_wh, ctl.ev_commands["ev1"].source))

    ctl, site = await run(config, EVENING, departure, plug, on_step)
    delivered = site.models["ev1"].session_energy_wh
    assert delivered >= evpolicy.DEFAULT_NEED_WH - 200, delivered
    assert delivered <= evpolicy.DEFAULT_NEED_WH + 500  # the plan stops at the policy's need
    # the planned charging waits for the night tariff (from 22:00 JST)
    night = EVENING + timedelta(hours=4)
    before_night = max(e for t, e, _ in log if t < night)
    assert before_night < 1000, before_night
    assert sum(src == "plan" for _, _, src in log) > 0.9 * len(log)
    assert site.models["ev1"].writes >= 2  # limits were written (pause, then charge)


@pytest.mark.timeout(60)
async def test_outage_detected_from_meter_and_released(tmp_path):
    config = with_charger(tmp_path)
    start = EVENING
    out_from, out_to = start + timedelta(minutes=5), start + timedelta(minutes=12)
    states = []

    def advance(site):
        def step(dt):
            site.step(dt)
            site.grid_outage = out_from <= site.clock.now() < out_to
        return step

    def on_step(t, ctl, site):
        assert ctl.outage is None  # detected, never forced
        states.append((t, ctl.reserve["bat1"].state, ctl.decisions["bat1"].setpoint_w))

    await run(config, start, start + timedelta(minutes=20), on_step=on_step, advance=advance)
    # readings lag the simulation by one step (polled before the dispatch), and the detector
    # waits for `samples` consecutive dead (then live) readings, one per dispatch step
    od = config.outage_detection
    lag = timedelta(seconds=config.optimiser.dispatch_interval_s * max(od.samples, od.restore_samples))
    during = [s for t, s, _ in states if out_from + lag < t < out_to]
    after = [s for t, s, _ in states if t > out_to + lag]
    before = [s for t, s, _ in states if t < out_from]
    assert during and all(s is ReserveState.OUTAGE for s in during)
    assert after and all(s is not ReserveState.OUTAGE for s in after)
    assert before and all(s is not ReserveState.OUTAGE for s in before)
