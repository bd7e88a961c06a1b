"""EV sessions, VPP commitments and the real-time grid limit in the control loop.

Pure policy functions are tested directly; the loop is driven with a table of snapshots
and a recorder of writes as in ``test_loop`` (the Modbus closed loop is ``test_site_loop``).
"""
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import optimizer
from drivers.protocols import DeviceKind, Snapshot
from tests.testkit.sites import overridden
from vpp.control import ev as evpolicy
from vpp.control.bounds import Proposal
from vpp.control.gridlimit import battery_shift, predicted_grid_w, shed_ev
from vpp.control.loop import Controller

from .test_loop import T0, Clock, Table, cfg, set_readings

JST = "Asia/Tokyo"


class Recorder:
    def __init__(self):
        self.writes = []

    async def set_power(self, watts, revert_s=None):
        self.writes.append(("power", watts, revert_s))

    async def set_current_limit(self, amps):
        self.writes.append(("current", amps))

    async def set_power_limit(self, watts, revert_s=None):
        self.writes.append(("pv_limit", watts, revert_s))


class RecTable(Table):
    def device(self, device_id):
        return self.devices.setdefault(device_id, Recorder())


def controller(grid: dict | None = None, **kw):
    """The test_loop site (``grid``: overrides of its grid limits [W]) under a recorder."""
    config = overridden(cfg(), grid=grid) if grid else cfg()
    ctl = Controller(config, fleet=RecTable(), clock=Clock(T0), **kw)
    set_readings(ctl, soc=0.6, grid_w=5000.0)
    return ctl


def set_ev(ctl, cid, plugged=True, power_w=0.0, limit_a=32.0, delivered_wh=0.0):
    state = (3.0 if power_w > 0 else 2.0) if plugged else 1.0
    ctl.fleet.snaps[cid] = Snapshot(cid, DeviceKind.EV_CHARGER, ctl.now() - timedelta(seconds=1), {
        "power_w": power_w, "state": state, "plugged": 1.0 if plugged else 0.0,
        "current_limit_a": limit_a, "session_energy_wh": delivered_wh})


# ----------------------------------------------------------------------- pure policy
def test_departure_policy():
    tz = JST
    evening = datetime(2026, 6, 21, 9, 0, tzinfo=timezone.utc)  # 18:00 JST
    dep = evpolicy.departure_for(evening, tz)
    assert dep == datetime(2026, 6, 21, 22, 30, tzinfo=timezone.utc)  # 07:30 JST next day
    early = datetime(2026, 6, 20, 21, 0, tzinfo=timezone.utc)  # 06:00 JST
    assert evpolicy.departure_for(early, tz) == early + timedelta(hours=8)


def test_departure_policy_can_be_replaced():
    from datetime import time

    p = evpolicy.EvPolicy(need_wh=25_000, departure_local=time(0, 0), min_stay_h=4)
    evening = datetime(2026, 6, 21, 9, 0, tzinfo=timezone.utc)  # 18:00 JST
    assert evpolicy.departure_for(evening, JST, p) == evening + timedelta(hours=6)


def test_amps_from_power_clamped_and_paused():
    c = cfg().device("ev1")  # 200 V (Japan), 1 phase, 6..32 A, 6.4 kW
    assert c.ratings.voltage_v == 200
    assert evpolicy.amps_for(200 * 10, c) == pytest.approx(10.0)
    assert evpolicy.amps_for(1000.0, c) == 6.0          # below min current: min
    assert evpolicy.amps_for(500.0, c) == 0.0           # below half of it: pause
    assert evpolicy.amps_for(0.0, c) == 0.0
    assert evpolicy.amps_for(20_000.0, c) == 32.0
    assert evpolicy.connected({"state": 2.0}) and evpolicy.connected({"plugged": 1.0})
    assert not evpolicy.connected({"state": 1.0}) and not evpolicy.connected({"state": 5.0})


def test_grid_limit_functions():
    assert predicted_grid_w(1000.0, {"e": 0.0}, {"e": 7000.0}, {"b": 0.0}, {"b": 2000.0}) == 6000.0
    shed, left = shed_ev(3000.0, {"e1": 7000.0, "e2": 2000.0}, {"e1": 1380.0, "e2": 1380.0})
    assert shed == {"e1": 4000.0, "e2": 2000.0} and left == 0.0
    shed, left = shed_ev(6000.0, {"e1": 7000.0}, {"e1": 1380.0})
    assert shed == {"e1": 0.0} and left == 0.0         # below minimum: pause
    shift, left = battery_shift(5000.0, {"a": 0.0, "b": 0.0}, {"a": 3000.0, "b": 1000.0})
    assert shift == {"a": 3000.0, "b": 1000.0} and left == 1000.0


# ----------------------------------------------------------------------- in the loop
async def test_connected_car_is_planned_and_written_as_current_limit():
    ctl = controller()
    set_ev(ctl, "ev1", plugged=True, delivered_wh=5000.0)
    set_ev(ctl, "ev2", plugged=False)
    plan = ctl.plan_job()
    assert [s.charger_id for s in plan.problem.evs] == ["ev1"]
    s = plan.problem.evs[0]
    assert s.energy_wh == pytest.approx(10_000.0)      # 15 kWh policy − 5 kWh delivered
    dep = evpolicy.departure_for(T0, ctl.config.site.timezone)
    assert s.departure_slot == int(np.ceil((dep - plan.schedule.start).total_seconds() / 1800))
    ev_w = plan.schedule.ev_w["ev1"]
    assert ev_w[:s.departure_slot].sum() * 0.5 == pytest.approx(10_000.0, rel=1e-3)
    await ctl.dispatch_job()
    k = int((T0 - plan.schedule.start).total_seconds() // 1800)
    cmd = ctl.ev_commands["ev1"]
    assert cmd.source == "plan" and cmd.amps == evpolicy.amps_for(ev_w[k], ctl.config.device("ev1"))
    expected = [] if cmd.amps == 32.0 else [("current", cmd.amps)]  # unchanged limit: no write
    assert ctl.fleet.devices.get("ev1", Recorder()).writes == expected
    assert ctl.ev_commands["ev2"].source == "default"
    # unplugged: the session is forgotten
    set_ev(ctl, "ev1", plugged=False)
    assert ctl.plan_job().problem.evs == () and "ev1" not in ctl.ev_plugs


def test_controller_plans_with_its_ev_policy():
    from datetime import time

    ctl = controller(ev_policy=evpolicy.EvPolicy(need_wh=25_000, departure_local=time(16, 0), min_stay_h=1))
    set_ev(ctl, "ev1", plugged=True)
    plan = ctl.plan_job()
    s = plan.problem.evs[0]
    assert s.energy_wh == 25_000 and s.departure_slot == 8  # 12:00 JST slot → 16:00 JST
    assert plan.schedule.ev_w["ev1"][:8].sum() * 0.5 == pytest.approx(25_000, rel=1e-3)


def test_commitments_keep_soc_headroom():
    award_w, slots = 20_000.0, range(10, 20)  # 20 kW up for 1 h, from 5 h ahead

    def book(start, horizon):
        up = np.zeros(horizon.n)
        up[list(slots)] = award_w
        return optimizer.VppCommitments(award_up_w=up, duration_s=3600)

    free = controller().plan_job().schedule
    ctl = controller(commitments_source=book)
    plan = ctl.plan_job()
    assert plan.problem.vpp is not None and not ctl.alarms.is_active("commitments")
    b = plan.problem.batteries[0]
    floor_soc = 0.30 + award_w * 1.0 / (b.eta_discharge * b.capacity_wh)
    assert plan.schedule.soc["bat1"][list(slots)].min() >= floor_soc - 1e-4
    assert free.soc["bat1"][list(slots)].min() < floor_soc - 0.01  # without it the plan uses it


def test_commitments_source_failure_raises_alarm_and_plans():
    def broken(start, horizon):
        raise RuntimeError("award book offline")

    ctl = controller(commitments_source=broken)
    assert ctl.plan_job() is not None and "offline" in ctl.alarms.get("commitments").reason


def test_grid_import_limit_sheds_ev_then_battery():
    ctl = controller(grid={"import_limit_w": 10_000})
    ctl.dispatch_source = lambda now: {"bat1": Proposal("dispatch", -4000.0, reason="VPP charge")}
    # measured: 9 kW import with the battery idle and two cars charging 7.36 kW each
    set_readings(ctl, soc=0.6, grid_w=9000.0 + 2 * 7360.0)
    set_ev(ctl, "ev1", power_w=7360.0)
    set_ev(ctl, "ev2", power_w=7360.0)
    d = ctl.decide()[0]
    # cars cut to 0 would still leave 9 kW + 4 kW charge − 10 kW = 3 kW: EVs first, then battery
    cmds = ctl.ev_commands
    total_ev = sum(evpolicy.power_for(cmds[c].amps, ctl.config.device(c)) for c in ("ev1", "ev2"))
    assert all(cmds[c].source == "grid" for c in ("ev1", "ev2")) and total_ev == 0.0
    assert d.setpoint_w == pytest.approx(-1000.0) and d.min_w == pytest.approx(-1000.0)
    assert any(r.startswith("grid:") for r in d.reasons)
    # smaller excess (10.7 kW): one car paused, the other slowed to 4 kW; battery keeps its dispatch
    set_readings(ctl, soc=0.6, grid_w=2000.0 + 2 * 7360.0)
    d = ctl.decide()[0]
    assert d.setpoint_w == -4000.0
    ev_after = {c: evpolicy.power_for(ctl.ev_commands[c].amps, ctl.config.device(c)) for c in ("ev1", "ev2")}
    assert sorted(ev_after.values()) == [0.0, pytest.approx(4000.0)]  # grid: 2 + 4 + 4 = 10 kW
    assert not ctl.alarms.is_active("grid")


def test_grid_limit_never_breaks_reserve():
    ctl = controller(grid={"import_limit_w": 1000})
    set_readings(ctl, soc=0.30, grid_w=6000.0)  # at the floor: HOLD, no discharge allowed
    d = ctl.decide()[0]
    assert d.setpoint_w <= 0.0
    assert "import limit cannot be held" in ctl.alarms.get("grid").reason


async def test_grid_export_limit_charges_then_curtails_pv():
    ctl = controller(grid={"export_limit_w": 5000})
    ts = ctl.now() - timedelta(seconds=1)
    ctl.dispatch_source = lambda now: {"bat1": Proposal("dispatch", 0.0, reason="hold")}
    set_readings(ctl, soc=0.6, grid_w=-45_000.0)
    ctl.fleet.snaps["pv1"] = Snapshot("pv1", DeviceKind.PV, ts, {"power_w": 50_000.0})
    d = ctl.decide()[0]
    assert d.setpoint_w == pytest.approx(-40_000.0) and ctl.pv_limits == {}  # charging first
    set_readings(ctl, soc=0.95, grid_w=-45_000.0)  # full: PV is curtailed instead
    d = ctl.decide()[0]
    assert d.setpoint_w == 0.0 and ctl.pv_limits["pv1"] == pytest.approx(10_000.0)
    await ctl.dispatch_job()
    assert ("pv_limit", pytest.approx(10_000.0), ctl.config.optimiser.lease_s) in ctl.fleet.devices["pv1"].writes
    set_readings(ctl, soc=0.6, grid_w=-3000.0)  # within the limit: no curtailment
    ctl.decide()
    assert ctl.pv_limits == {}
