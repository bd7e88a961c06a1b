"""The multi-town deployment files: compose with NATS, centre, two workers and edge agents;
the edge box's systemd unit. Every ``vpp`` command in them parses with the real CLI."""
from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from vpp.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(scope="module")
def fleet():
    return yaml.safe_load((DEPLOY / "compose.fleet.yaml").read_text())


def test_fleet_has_bus_centre_two_workers_and_agents(fleet):
    s = fleet["services"]
    assert {"nats", "central", "sink", "scheduler", "worker-1", "worker-2"} <= set(s)
    assert [n for n in s if n.startswith("edge-")] == ["edge-t01", "edge-t02"]
    assert s["nats"]["entrypoint"] == ["nats-server"] and "--jetstream" in s["nats"]["command"]
    for name in ("worker-1", "worker-2"):
        assert s[name]["entrypoint"][:3] == ["dask", "worker", "tcp://scheduler:8786"]
    published = [p for svc in s.values() for p in svc.get("ports", [])]
    assert published and all(p["host_ip"] == "127.0.0.1" for p in published)


def test_fleet_vpp_commands_parse_and_use_the_bus_and_a_volume(fleet):
    parser = build_parser()
    for name, svc in fleet["services"].items():
        cmd = svc.get("command") or []
        if cmd[:1] != ["vpp"]:
            continue
        args = parser.parse_args(cmd[1:])
        assert args.bus == "nats://nats:4222", name
        assert args.state_dir.startswith("/var/lib/vpp/"), name
        assert svc["volumes"][0].endswith(":/var/lib/vpp"), name
    towns = [parser.parse_args(s["command"][1:]).town for n, s in fleet["services"].items() if n.startswith("edge-")]
    assert len(set(towns)) == len(towns)  # one agent per town


def test_edge_unit_runs_the_agent_with_a_config_and_the_bus():
    unit = DEPLOY / "systemd/vpp-edge.service"
    lines = [ln.strip() for ln in unit.read_text().splitlines()]
    (exec_line,) = [ln.split("=", 1)[1] for ln in lines if ln.startswith("ExecStart=")]
    argv = shlex.split(exec_line.replace("${VPP_BUS}", "nats://centre:4222"))
    assert argv[0].endswith("/vpp")
    args = build_parser().parse_args(argv[1:])
    assert args.config.endswith(".yaml") and args.bus == "nats://centre:4222"
    assert "User=vpp" in lines and "Restart=always" in lines
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
        assert "Unknown key" not in r.stderr and "Invalid" not in r.stderr, r.stderr
