"""config.optimiser.planner picks the controller's planner: one site LP, or fleet planning.

The fleet is a table of snapshots (the loop reads only ``latest(id)``); the plans come from
the real optimiser (HiGHS) and :func:`optimizer.fleet.plan_fleet`.
"""
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import optimizer
from drivers.protocols import DeviceKind, Snapshot
from simulators.town import town_config
from tests.testkit.sites import overridden
from vpp.control.fleet_planner import fleet_solver, planner_for
from vpp.control.loop import Controller

T0 = datetime(2026, 6, 21, 1, 7, tzinfo=timezone.utc)  # 10:07 JST


class Clock:
    def now(self):
        return T0


class Table:
    def __init__(self, snaps):
        self.snaps = snaps

    def latest(self, device_id):
        return self.snaps.get(device_id)

    def device(self, device_id):
        raise AssertionError("planning only")


def town(homes: int, planner: str | None = None):
    return overridden(town_config(homes, seed=2),
                      optimiser={"horizon_h": 12, **({"planner": planner} if planner is not None else {})})


def town_snapshots(cfg) -> dict:
    """Readings 5 s before T0: batteries at SoC 35–90 % (seeded), feeder importing 20 kW."""
    rng = np.random.default_rng(0)
    ts = T0 - timedelta(seconds=5)
    snaps = {b.id: Snapshot(b.id, DeviceKind.BATTERY, ts, {"soc": float(rng.uniform(0.35, 0.9)), "power_w": 0.0})
             for b in cfg.devices_of("battery")}
    snaps["feeder"] = Snapshot("feeder", DeviceKind.METER, ts,
                               {"power_w": 20_000.0, "voltage_v": 202.0, "frequency_hz": 50.0})
    return snaps


def planned(cfg):
    snaps = town_snapshots(cfg)
    ctl = Controller(cfg, fleet=Table(snaps), clock=Clock())
    plan = ctl.plan_job()
    assert plan is not None, ctl.alarms.active()
    return ctl, plan


def test_generated_town_selects_the_fleet_planner():
    assert town(20).optimiser.planner == "fleet"
    assert planner_for(town(20, "site")) is optimizer.solve


def test_fleet_planner_plans_every_home_through_the_controller():
    ctl, plan = planned(town(20))
    s = plan.schedule
    bats = [b.id for b in ctl.batteries]
    assert len(bats) == 21
    # one entry per home (never the aggregate's virtual battery), floors held per home
    for key in ("battery_w", "soc", "floor", "recovery"):
        assert sorted(getattr(s, key)) == sorted(bats), key
    for b in ctl.batteries:
        assert np.all(s.soc[b.id] >= s.floor[b.id] - 1e-6)
        assert np.all(np.abs(s.battery_w[b.id]) <= b.ratings.max_discharge_w + 1e-6)
    assert s.solver.validated
    # shares follow each home's energy and limits, not one number for all
    assert len({round(float(s.battery_w[b][4])) for b in bats}) >= 3
    # the LP behind it is the one virtual battery: its size does not grow with the homes
    _, small = planned(town(5))
    assert small.schedule.solver.n_variables == s.solver.n_variables
    # and the controller follows it
    assert ctl.plan_proposal(bats[0], T0)[0].source == "plan"


def test_site_planner_is_one_lp_over_every_battery():
    _, site = planned(town(5, "site"))
    _, fleet = planned(town(5))
    assert site.schedule.solver.n_variables > 3 * fleet.schedule.solver.n_variables
    assert len(site.schedule.battery_w) == 6


def test_fleet_planner_without_batteries_uses_the_site_lp():
    cfg = town(3)
    solve = fleet_solver(cfg)
    h = optimizer.Horizon(datetime(2026, 6, 21, tzinfo=timezone.utc), 900, 8)
    p = optimizer.Problem(horizon=h, pv_w=np.zeros(8), load_w=np.full(8, 1000.0), batteries=(),
                          grid=optimizer.GridParams(1e5, 1e5),
                          prices=optimizer.Prices(buy=np.full(8, 30.0), sell=np.full(8, 8.0)))
    s = solve(p)
    assert s.battery_w == {} and np.allclose(s.grid_import_w, 1000.0)


def test_vpp_plan_on_a_generated_town_uses_the_fleet_planner(tmp_path, capsys):
    import json

    from vpp.cli import main

    out = tmp_path / "town.yaml"
    assert main(["town", "generate", "--homes", "8", "--seed", "2", "--out", str(out)]) == 0
    capsys.readouterr()

    def plan_vars(path) -> tuple[int, dict]:
        assert main(["plan", "--config", str(path), "--json", "--no-store", "--weather", "clear-sky",
                     "--soc", "0.6", "--start", "2026-06-21T10:00+09:00"]) == 0
        s = json.loads(capsys.readouterr().out)["schedule"]
        return s["solver"]["n_variables"], s["battery_w"]

    fleet_n, per_home = plan_vars(out)
    assert len(per_home) == 9 and "fleet" not in per_home  # every home, no virtual battery
    site = tmp_path / "site.yaml"
    site.write_text(out.read_text().replace("planner: fleet", "planner: site"))
    site_n, _ = plan_vars(site)
    assert site_n > 3 * fleet_n


def test_fleet_plans_ev_sessions_and_keeps_a_vpp_award():
    """Plugged-in cars and an 18:00 JST award through the controller: each car's energy by
    departure on its own charger, the homes' summed energy above their floors covers the
    award, and no 'not planned' warning."""
    cfg = town(20)
    award_w, tau_s = 90_000.0, cfg.vpp.duration_s  # more than the plan without it keeps
    award_at = datetime(2026, 6, 21, 9, 0, tzinfo=timezone.utc)  # 18:00 JST

    def commitments(start, horizon):
        t = np.arange(horizon.n)
        k = int((award_at - horizon.start).total_seconds() // horizon.slot_s)
        return optimizer.VppCommitments(award_up_w=np.where(t == k, award_w, 0.0), duration_s=tau_s)

    snaps = town_snapshots(cfg)
    ts = snaps["feeder"].ts
    chargers = [c.id for c in cfg.devices_of("ev_charger")]
    assert len(chargers) >= 3
    for i, c in enumerate(chargers):
        snaps[c] = Snapshot(c, DeviceKind.EV_CHARGER, ts, {"plugged": 1.0, "session_energy_wh": 2000.0 * i,
                                                          "power_w": 0.0})
    ctl = Controller(cfg, fleet=Table(snaps), clock=Clock(), commitments_source=commitments)
    plan = ctl.plan_job()
    assert plan is not None, ctl.alarms.active()
    s = plan.schedule
    assert s.solver.validated, s.warnings
    assert not any("not planned" in w for w in s.warnings)
    dt = s.slot_s / 3600
    sessions = ctl.ev_sessions(T0, optimizer.Horizon(s.start, s.slot_s, s.n))
    assert sorted(s.ev_w) == sorted(chargers)
    for e in sessions:
        assert s.ev_w[e.charger_id][:e.departure_slot].sum() * dt == pytest.approx(e.energy_wh, abs=1.0)
        assert s.ev_unmet_wh[e.charger_id] < 1.0
    k = int((award_at - s.start).total_seconds() // s.slot_s)
    caps = {b.id: b.ratings.capacity_wh for b in ctl.batteries}
    eta = {b.id: b.ratings.discharge_efficiency for b in ctl.batteries}
    above = sum(eta[b] * caps[b] * max(s.soc[b][k] - s.floor[b][k], 0.0) for b in caps)
    assert above >= award_w * tau_s / 3600 - 1.0
    assert s.grid_import_w.max() <= cfg.grid.import_limit_w + 1.0
    # without the award the evening plan keeps less than that
    free = Controller(cfg, fleet=Table(snaps), clock=Clock()).plan_job().schedule
    kept = sum(eta[b] * caps[b] * max(free.soc[b][k] - free.floor[b][k], 0.0) for b in caps)
    assert kept < award_w * tau_s / 3600
