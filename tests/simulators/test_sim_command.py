"""``vpp sim`` end to end: serves the config's devices, prints endpoints and readings, stops."""
from __future__ import annotations

import yaml

from simulators.site import with_free_ports
from vpp.cli import main
from vpp.config import read_config


def test_vpp_sim_serves_prints_and_stops(tmp_path, capsys):
    cfg = with_free_ports(read_config("deploy/examples/three-homes.yaml"))
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    rc = main(["sim", "--config", str(path), "--speed", "60", "--interval", "0.3",
               "--duration", "0.8", "--start", "2026-06-22T03:00:00+00:00"])
    out = capsys.readouterr().out
    assert rc == 0
    feeder = cfg.device("feeder").connection
    assert f"127.0.0.1:{feeder.port}" in out
    assert "h003-bat" in out and "sunspec_storage" in out
    assert "2026-06-22 12:0" in out  # readings stamped in site local time (JST)
    assert "simulator stopped" in out


def test_vpp_sim_rejects_bad_speed(tmp_path, capsys):
    assert main(["sim", "--config", "deploy/examples/three-homes.yaml", "--speed", "0"]) == 2
