"""Job functions of the control loop against the real optimiser and forecasts.

The fleet here is a table of snapshots plus a recorder of writes: the loop's only contact
with devices is ``latest(id)`` and ``device(id).set_power``; the closed-loop test runs the
same code against simulated devices over Modbus.
"""
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import optimizer
from drivers.protocols import DeviceKind, Quality, Snapshot
from vpp.config import read_config, updated
from vpp.control.bounds import Override, Proposal
from vpp.control.loop import Controller, floor_time
from vpp.control.reserve import ReserveState
from vpp.control.scheduler import build_scheduler

CONFIG = Path(__file__).parents[2] / "deploy" / "examples" / "community-centre.yaml"
T0 = datetime(2026, 6, 21, 3, 7, tzinfo=timezone.utc)  # 12:07 JST


class Clock:
    def __init__(self, t):
        self.t = t

    def now(self):
        return self.t


class Battery:
    def __init__(self, fail=False):
        self.writes, self.fail = [], fail

    async def set_power(self, watts, revert_s=None):
        if self.fail:
            raise ConnectionError("device offline")
        self.writes.append((watts, revert_s))


class Table:
    def __init__(self):
        self.snaps, self.devices = {}, {}

    def latest(self, device_id):
        return self.snaps.get(device_id)

    def device(self, device_id):
        return self.devices.setdefault(device_id, Battery())


def cfg(**optimiser):
    return updated(read_config(CONFIG), optimiser={"horizon_h": 24, "slot_s": 1800, **optimiser})


def fast_polls(config):
    """``config`` with short Modbus timeouts and 0.2 s polls (real-time loopback tests)."""
    return config.model_copy(update={"devices": [d.model_copy(update={"timeout_s": 0.5, "poll_interval_s": 0.2})
                                                 for d in config.devices]})


def controller(soc=0.6, grid_w=5000.0, bat_w=0.0, **kw):
    t = Table()
    clock = Clock(T0)
    ctl = Controller(cfg(), fleet=t, clock=clock, **kw)
    set_readings(ctl, soc=soc, grid_w=grid_w, bat_w=bat_w)
    return ctl


def set_readings(ctl, soc=0.6, grid_w=5000.0, bat_w=0.0, age_s=1.0, quality=Quality.GOOD):
    ts = ctl.now() - timedelta(seconds=age_s)
    ctl.fleet.snaps["bat1"] = Snapshot("bat1", DeviceKind.BATTERY, ts, {"soc": soc, "power_w": bat_w}, quality)
    ctl.fleet.snaps["meter1"] = Snapshot("meter1", DeviceKind.METER, ts,
                                         {"power_w": grid_w, "voltage_v": 202.0, "frequency_hz": 50.0})


def test_forecast_without_weather_is_clear_sky_and_flagged():
    ctl = controller()
    fc = ctl.forecast_job()
    assert len(fc.index) == 48 and fc.index[0] == floor_time(T0, 1800)
    assert fc.weather_fallback and ctl.alarms.is_active("forecast:weather")
    assert fc.pv_w.max() > 25_000  # 50 kWp at clear-sky noon in June
    assert (fc.load_w > 0).all() and not fc.load_from_history
    # the example buys at the JEPX 東北 price of its shipped spot file (or its stated forecast)
    assert fc.price_version.startswith("jepx:東北:") and fc.tariff["spot_per_kwh"].notna().all()
    assert set(fc.tariff["period"]) == {"spot"}


def test_plan_from_measured_soc_respects_floor():
    ctl = controller(soc=0.6)
    plan = ctl.plan_job()
    assert plan is not None and not ctl.alarms.is_active("plan")
    s = plan.schedule
    assert s.n == 48 and plan.problem.batteries[0].soc0 == 0.6
    assert np.all(s.soc["bat1"] >= 0.30 - 1e-6)
    d = ctl.decide()
    assert d[0].source == "plan"
    k = int((T0 - s.start).total_seconds() // s.slot_s)
    assert d[0].setpoint_w == pytest.approx(np.clip(s.battery_w["bat1"][k], d[0].min_w, d[0].max_w))


def test_solver_failure_keeps_old_plan_and_falls_back_with_alarm():
    def broken(problem):
        raise optimizer.SolveError("HiGHS: forced failure")

    ctl = controller(grid_w=4000.0, solve=broken)
    assert ctl.plan_job() is None
    assert "forced failure" in ctl.alarms.get("plan").reason
    d = ctl.decide()[0]
    assert d.source == "fallback" and d.setpoint_w == pytest.approx(4000.0)  # covers the import
    assert "no plan" in ctl.alarms.get("fallback").reason
    ctl.solve = optimizer.solve  # the optimiser recovers
    ctl.plan_job()
    assert not ctl.alarms.is_active("plan")
    assert ctl.decide()[0].source == "plan" and not ctl.alarms.is_active("fallback")


def test_stale_plan_falls_back():
    ctl = controller(grid_w=-3000.0)
    ctl.plan_job()
    ctl.clock.t = T0 + timedelta(seconds=ctl.config.optimiser.stale_plan_s + 60)
    set_readings(ctl, soc=0.6, grid_w=-3000.0)
    d = ctl.decide()[0]
    assert d.source == "fallback" and d.setpoint_w == pytest.approx(-3000.0)  # charge from surplus
    assert "stale" in ctl.alarms.get("fallback").reason


def test_fallback_never_discharges_below_floor():
    ctl = controller(grid_w=8000.0)
    set_readings(ctl, soc=ctl.base_floor(ctl.batteries[0]), grid_w=8000.0)  # at the floor, importing
    d = ctl.decide()[0]
    assert d.source == "fallback" and d.setpoint_w == 0.0
    assert ctl.reserve["bat1"].state is ReserveState.HOLD


def test_stale_battery_reading_idles_with_alarm():
    ctl = controller()
    ctl.plan_job()
    set_readings(ctl, age_s=120)
    d = ctl.decide()[0]
    assert (d.source, d.setpoint_w) == ("inputs-stale", 0.0)
    assert ctl.alarms.is_active("inputs:bat1")
    set_readings(ctl, quality=Quality.BAD)
    assert ctl.decide()[0].source == "inputs-stale"
    set_readings(ctl)
    ctl.decide()
    assert not ctl.alarms.is_active("inputs:bat1")


def test_override_and_dispatch_priorities():
    ctl = controller(soc=0.8, dispatch_source=lambda now: {"bat1": Proposal("dispatch", 20_000, reason="VPP")})
    ctl.plan_job()
    assert ctl.decide()[0].source == "dispatch"
    ctl.overrides["bat1"] = Override("bat1", T0 + timedelta(minutes=5), setpoint_w=-1000)
    assert (ctl.decide()[0].source, ctl.decide()[0].setpoint_w) == ("override", -1000)
    ctl.clock.t = T0 + timedelta(minutes=6)
    set_readings(ctl, soc=0.8)
    assert ctl.decide()[0].source == "dispatch" and "bat1" not in ctl.overrides


def test_storm_mode_force_charges_and_plans_to_target():
    ctl = controller(soc=0.5)
    ctl.storm.on(T0, target=0.9, deadline=T0)  # target due now
    d = ctl.decide()[0]
    assert ctl.reserve["bat1"].state is ReserveState.FORCE_CHARGE and d.setpoint_w < 0
    ctl.storm.on(T0, target=0.9, deadline=T0 + timedelta(hours=6))
    plan = ctl.plan_job()
    s = plan.schedule
    k = int((T0 + timedelta(hours=6) - s.start).total_seconds() // s.slot_s)
    assert s.soc["bat1"][k:].min() >= 0.9 - 1e-3


def test_outage_unlocks_floor():
    ctl = controller(soc=0.2, grid_w=0.0, bat_w=3000.0)
    ctl.outage = True
    d = ctl.decide()[0]
    assert ctl.reserve["bat1"].state is ReserveState.OUTAGE
    assert d.setpoint_w == pytest.approx(3000.0)  # keeps serving the site below the floor


def _dead_meter(ctl, v=0.0, hz=0.0):
    ctl.fleet.snaps["meter1"].values.update(voltage_v=v, frequency_hz=hz)


def test_outage_detected_from_grid_meter_voltage():
    ctl = controller(soc=0.2, grid_w=0.0, bat_w=2000.0)
    cfg_ = ctl.config.outage_detection
    dt = timedelta(seconds=cfg_.confirm_s / (cfg_.samples - 1))
    for _ in range(cfg_.samples - 1):  # not yet: too few samples
        _dead_meter(ctl)
        assert ctl.decide()[0].setpoint_w <= 0.0 and ctl.reserve["bat1"].state is not ReserveState.OUTAGE
        ctl.clock.t += dt
        set_readings(ctl, soc=0.2, grid_w=0.0, bat_w=2000.0)
    _dead_meter(ctl)
    assert ctl.decide()[0].setpoint_w == pytest.approx(2000.0)
    assert ctl.reserve["bat1"].state is ReserveState.OUTAGE and ctl.grid_down
    assert ctl.alarms.is_active("grid")
    for _ in range(cfg_.restore_samples - 1):  # grid back: debounced too
        ctl.clock.t += dt
        set_readings(ctl, soc=0.2, grid_w=0.0, bat_w=2000.0)
        ctl.decide()
        assert ctl.reserve["bat1"].state is ReserveState.OUTAGE
    ctl.clock.t += dt
    set_readings(ctl, soc=0.2, grid_w=0.0, bat_w=2000.0)  # relock, climb to the floor
    d = ctl.decide()[0]
    assert ctl.reserve["bat1"].state is ReserveState.FORCE_CHARGE and d.setpoint_w < 0
    assert not ctl.alarms.is_active("grid")


def test_implausible_meter_readings_never_unlock_the_floor():
    events = []
    ctl = controller(soc=0.10, grid_w=0.0, bat_w=20_000.0, on_outage_event=events.append)
    for v, hz in ((101.0, 0.0), (10.1, 50.0), (101.0, 500.0), (2500.0, 50.0), (0.0, 50.0)) * 3:
        ctl.clock.t += timedelta(seconds=10)
        set_readings(ctl, soc=0.10, grid_w=0.0, bat_w=20_000.0)
        _dead_meter(ctl, v, hz)
        d = ctl.decide()[0]
        assert ctl.reserve["bat1"].state is not ReserveState.OUTAGE and d.setpoint_w <= 0.0
        assert ctl.alarms.is_active("grid:reading")
    assert [e.kind for e in events] == ["bad_reading"]
    ctl.clock.t += timedelta(seconds=10)
    set_readings(ctl, soc=0.10, grid_w=0.0, bat_w=20_000.0)
    ctl.decide()
    assert not ctl.alarms.is_active("grid:reading") and events[-1].kind == "reading_ok"


async def test_dispatch_writes_leases_and_alarms_on_failure():
    ctl = controller()
    ctl.plan_job()
    decisions = await ctl.dispatch_job()
    writes = ctl.fleet.devices["bat1"].writes
    assert writes == [(decisions[0].setpoint_w, ctl.config.optimiser.lease_s)]
    lease = ctl.leases["bat1"]
    assert lease.expires_at - lease.written_at == timedelta(seconds=ctl.config.optimiser.lease_s)
    ctl.fleet.devices["bat1"] = Battery(fail=True)
    await ctl.dispatch_job()
    assert "offline" in ctl.alarms.get("write:bat1").reason


async def test_scheduler_wiring():
    ctl = controller()
    sched = build_scheduler(ctl)
    jobs = {j.id: j for j in sched.get_jobs()}
    assert set(jobs) == {"forecast", "plan", "dispatch"}
    assert jobs["dispatch"].trigger.interval == timedelta(seconds=60)
    assert jobs["plan"].trigger.interval == timedelta(seconds=900)
    assert jobs["forecast"].trigger.interval == timedelta(hours=1)


async def test_vpp_run_drives_simulated_devices_in_real_time(tmp_path):
    """`vpp run`'s serve(): real pollers, pipeline, APScheduler and a simulated site."""
    import asyncio

    from simulators.clock import SimClock
    from simulators.site import SimulatedSite, with_free_ports
    from vpp.commands.run import serve
    from vpp.storage import open_store

    config = fast_polls(updated(with_free_ports(read_config(CONFIG)), storage={"path": str(tmp_path / "vpp.sqlite")},
                                optimiser={"horizon_h": 12, "slot_s": 1800}))
    site = SimulatedSite(config, SimClock(speed=1.0), auto_ev_sessions=False)
    await site.start()
    try:
        ctl = await serve(config, "clear-sky", duration=4.0, first_run_s=(0.0, 0.5, 2.0))
    finally:
        await site.stop()
    assert ctl.plan is not None and ctl.plan.schedule.n == 24
    lease = ctl.leases["bat1"]  # the dispatch job wrote a lease that the device carries
    assert lease.source == "plan"
    assert site.models["bat1"].revert_s == config.optimiser.lease_s
    with open_store(config.storage, site=config.site.name) as store:
        assert store.count(device="bat1") >= 3 and store.count(device="meter1") >= 3


def test_forecast_applies_pv_bias_and_load_history_from_store(tmp_path):
    import pandas as pd

    from vpp.control.loop import site_pv
    from vpp.forecast.pv import forecast_pv
    from vpp.forecast.weather import CsvWeatherProvider
    from vpp.storage import open_store

    config = updated(cfg(), storage={"path": str(tmp_path / "vpp.sqlite")})
    idx = pd.date_range(T0 - timedelta(days=8), T0 + timedelta(days=2), freq="1h").floor("h")
    cc = 50 + 40 * np.sin(np.arange(len(idx)) / 5.0)
    pd.DataFrame({"cloud_cover": cc, "temp_air": 22.0}, index=idx.rename("time")).to_csv(tmp_path / "w.csv")
    weather = CsvWeatherProvider(tmp_path / "w.csv")
    raw = Controller(config, clock=Clock(T0), weather=weather).forecast_job()

    # a week of telemetry: PV delivering 80 % of the model, a constant 2 kW site load
    slots = pd.date_range(floor_time(T0, 1800) - timedelta(days=7), floor_time(T0, 1800), freq="30min",
                          inclusive="left")
    from vpp.forecast.weather import get_weather
    w = get_weather(weather, config.site, slots[0], slots[-1] + slots.freq, slots.freq)
    model = site_pv(config, forecast_pv(config.pv_arrays, config.site, w.frame))
    snaps = []
    for t, p in model.items():
        ts = t.to_pydatetime()
        snaps += [Snapshot("pv1", DeviceKind.PV, ts, {"power_w": 0.8 * p}),
                  Snapshot("bat1", DeviceKind.BATTERY, ts, {"power_w": 0.0, "soc": 0.5}),
                  Snapshot("meter1", DeviceKind.METER, ts, {"power_w": 2000.0 - 0.8 * p})]
        snaps += [Snapshot(f"ev{i}", DeviceKind.EV_CHARGER, ts, {"power_w": 0.0}) for i in range(1, 5)]
    with open_store(config.storage, site=config.site.name) as store:
        store.write(snaps)
        fc = Controller(config, clock=Clock(T0), weather=weather, store=store).forecast_job()
    day = raw.pv_w > 1000
    np.testing.assert_allclose(fc.pv_w[day], 0.8 * raw.pv_w[day], rtol=0.02)
    assert fc.load_from_history
    np.testing.assert_allclose(fc.load_w, 2000.0, rtol=1e-6)


def test_site_pv_clips_at_inverter_rating():
    import pandas as pd

    from vpp.control.loop import site_pv

    config = cfg()
    by_array = pd.DataFrame({"roof-south": [40_000.0, 10_000.0], "carport": [20_000.0, 1_000.0]})
    assert site_pv(config, by_array).tolist() == [50_000.0, 11_000.0]  # pv1 is rated 50 kW


async def test_vpp_run_serves_health_on_the_configured_port(tmp_path):
    """`vpp run` (serve with http) answers /api/v1/health on config.api.host:port."""
    import asyncio
    import contextlib

    import httpx

    from simulators.clock import SimClock
    from simulators.site import SimulatedSite, with_free_ports
    from vpp.api.server import bind_socket
    from vpp.commands.run import serve

    with bind_socket("127.0.0.1", 0) as s:
        port = s.getsockname()[1]
    config = fast_polls(updated(
        with_free_ports(read_config(CONFIG)), storage={"path": str(tmp_path / "vpp.sqlite")},
        api={"keys_path": str(tmp_path / "keys.json"), "ledger_path": str(tmp_path / "ledger.sqlite"),
             "host": "127.0.0.1", "port": port},
        optimiser={"horizon_h": 12, "slot_s": 1800}))
    site = SimulatedSite(config, SimClock(speed=1.0), auto_ev_sessions=False)
    await site.start()
    stop = asyncio.Event()
    try:
        task = asyncio.create_task(serve(config, "clear-sky", duration=60, stop=stop,
                                         first_run_s=(0.0, 0.5, 2.0), http=True))
        status = None
        async with httpx.AsyncClient(timeout=2) as c:
            for _ in range(100):
                with contextlib.suppress(httpx.HTTPError):
                    status = (await c.get(f"http://127.0.0.1:{config.api.port}/api/v1/health")).status_code
                    break
                await asyncio.sleep(0.1)
        stop.set()
        ctl = await asyncio.wait_for(task, 30)
    finally:
        await site.stop()
    assert status == 200
    assert ctl is not None
