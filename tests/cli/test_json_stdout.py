"""Every ``--json`` output of the ``vpp`` CLI is pure JSON on stdout (``vpp … --json | jq``
works): run in a subprocess, the whole stdout parses; logs and solver banners go to stderr."""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
import yaml

from simulators.clock import SimClock
from simulators.site import SimulatedSite, with_free_ports
from vpp.config import read_config

ROOT = Path(__file__).resolve().parents[2]
CENTRE = str(ROOT / "deploy" / "examples" / "community-centre.yaml")
OFFLINE = ["--weather", "clear-sky", "--no-store", "--soc", "0.6"]

#: name → (argv, JSON lines?): every command that has --json. ``{site}``: a config file of a
#: simulated site that is running while the command runs.
COMMANDS = {
    "plan": (["plan", "--config", CENTRE, "--json", *OFFLINE, "--start", "2026-06-21T00:00+09:00"], False),
    "bids": (["bids", "--config", CENTRE, "--day", "2026-06-22", "--start", "2026-06-21T10:00", "--json",
              *OFFLINE], False),
    "scenario run": (["scenario", "run", "sunny-day", "--hours", "1", "--json"], False),
    "devices read": (["devices", "read", "--config", "{site}", "--json"], True),
    "reserve check": (["reserve", "check", "--config", CENTRE, "--json"], False),
}


async def run_vpp(args: list[str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vpp.cli", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.slow  # four CLI processes, each planning or simulating: seconds apiece
@pytest.mark.parametrize("name", list(COMMANDS))
async def test_json_output_is_pure_json_on_stdout(name, tmp_path):
    args, lines = COMMANDS[name]
    site = None
    if "{site}" in args:
        cfg = with_free_ports(read_config(CENTRE))
        path = tmp_path / "site.yaml"
        path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        args = [str(path) if a == "{site}" else a for a in args]
        site = SimulatedSite(cfg, SimClock(speed=0), auto_ev_sessions=False)
        await site.start()
    try:
        rc, out, err = await run_vpp(args)
    finally:
        if site is not None:
            await site.stop()
    assert rc in (0, 1), err  # 1: a scenario's assertion failed (its KPIs are still printed)
    assert out.strip(), err
    docs = [json.loads(line) for line in out.splitlines()] if lines else [json.loads(out)]
    assert docs and all(isinstance(d, dict) for d in docs), out[:500]
