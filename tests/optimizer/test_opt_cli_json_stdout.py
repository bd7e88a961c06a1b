"""``vpp bids --json`` and ``vpp plan --json`` print nothing but JSON on stdout: the solver's
banner (HiGHS writes it on the C-level stdout of a fresh process) and logs go to stderr.
Run in a subprocess, since only a fresh process shows the banner and ``capsys`` cannot see
C-level output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "examples" / "community-centre.yaml"
COMMON = ["--config", str(CONFIG), "--start", "2026-06-21T10:00", "--weather", "clear-sky", "--no-store",
          "--soc", "0.6"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.run([sys.executable, "-c", "from vpp.cli import main; raise SystemExit(main())", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", [["bids", "--day", "2026-06-22"], ["plan"]], ids=["bids", "plan"])
def test_json_stdout_is_pure_json(command):
    r = run_cli(*command, *COMMON, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)  # the whole of stdout, nothing before or after the document
    assert isinstance(d, dict) and d["site"]
    assert "Running HiGHS" not in r.stdout
