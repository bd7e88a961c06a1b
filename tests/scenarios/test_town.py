"""Town scale: the generator, `vpp town generate`, and a small town-day run (20 homes)."""
from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest

from simulators.scenarios.runner import run_scenario
from simulators.scenarios.spec import read_scenario
from simulators.town import IDS_PER_PORT, generate_town, town_config
from vpp.cli import main
from vpp.config import read_config


def test_generated_town_is_a_valid_varied_site():
    cfg = town_config(721, seed=3)
    bats = cfg.devices_of("battery")
    assert len(bats) == 722  # every home and the centre
    assert len({d.home for d in cfg.devices if d.home}) == 722
    evs = len(cfg.devices_of("ev_charger"))
    assert 0.1 * 721 < evs < 0.3 * 721
    conns = [(d.connection.port, d.connection.device_id) for d in cfg.devices]
    assert len(set(conns)) == len(conns)  # distinct device ids per port
    per_port = Counter(p for p, _ in conns)
    assert max(per_port.values()) <= IDS_PER_PORT and len(per_port) >= len(conns) / IDS_PER_PORT
    arrays = cfg.pv_arrays
    assert np.std([a.kwp for a in arrays]) > 0.5 and np.std([a.azimuth for a in arrays]) > 10
    assert len({b.ratings.capacity_wh for b in bats}) >= 4
    assert generate_town(50, seed=3) == generate_town(50, seed=3) != generate_town(50, seed=4)


def test_town_generate_command(tmp_path):
    out = tmp_path / "town.yaml"
    assert main(["town", "generate", "--homes", "30", "--seed", "1", "--out", str(out)]) == 0
    cfg = read_config(out)
    assert len(cfg.devices_of("battery")) == 31 and cfg.device("feeder").role == "grid"
    assert cfg.optimiser.planner == "fleet"  # the controller plans it as a fleet
    evs = cfg.devices_of("ev_charger")
    assert evs and all(e.ratings.voltage_v == 200 for e in evs)  # Japanese single-phase 200 V


@pytest.mark.timeout(120)
def test_small_town_day_polls_plans_and_dispatches_every_home():
    sc = read_scenario("town-day")
    sc.town.homes = 20
    r = asyncio.run(run_scenario(sc, hours=2))
    rec = r.record
    assert len(r.batteries) == 21
    src = rec[[f"source:{b}" for b in r.batteries]]
    # every home follows the fleet plan from the first step on
    assert (src == "plan").all().all()
    assert r.kpis["plans_made"] >= 8  # 15-min plan cadence
    assert r.kpis["reserve_violations"] == 0 and r.kpis["points_lost"] == 0
    # setpoints are disaggregated per home, and the plan is tracked
    sp = rec[[f"setpoint:{b}" for b in r.batteries]].iloc[10]
    assert sp.nunique() >= 3  # shares follow each home's energy and limits
    assert r.kpis["plan_tracking_mae_w"] < 200
