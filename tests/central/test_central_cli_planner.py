"""`vpp central run` picks its planner: --plan-with, the distributed planner over --towns-dir, or serial."""
import argparse

import pytest

from vpp.central.distributed import DistributedPlanTowns
from vpp.central.planning import serial_plan_towns
from vpp.commands.central import planner
from vpp.commands.town import run_generate_towns


def args(**kw):
    return argparse.Namespace(**{"plan_with": None, "towns_dir": None, **kw})


def test_towns_dir_gives_the_distributed_planner_keyed_by_town_name(tmp_path):
    gen = argparse.Namespace(towns=2, homes=3, seed=0, base_port=16000, out=str(tmp_path), ocpp_stations=0,
                             protocol="modbus", v2h_share=0.0)
    assert run_generate_towns(gen) == 0
    p = planner(args(towns_dir=str(tmp_path)))
    assert isinstance(p, DistributedPlanTowns)
    assert sorted(p.configs) == ["izumi-new-town-01", "izumi-new-town-02"]


def test_default_is_serial_and_bad_inputs_name_the_option(tmp_path):
    assert planner(args()) is serial_plan_towns
    with pytest.raises(SystemExit, match="--towns-dir .*no \\*.yaml"):
        planner(args(towns_dir=str(tmp_path)))
    (tmp_path / "bad.yaml").write_text("site: {name: x}\ndevices: 3\n")
    with pytest.raises(SystemExit, match="--towns-dir"):
        planner(args(towns_dir=str(tmp_path)))
    with pytest.raises(SystemExit, match="--plan-with"):
        planner(args(plan_with="nomodule"))
