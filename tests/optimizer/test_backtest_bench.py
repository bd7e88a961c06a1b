"""bench/backtest.py --json: pure JSON on stdout with the keys the benchmark promises; the
simulated controller never leaves the reserve floor (a short run: 2 days, K=3)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_backtest_json_keys_and_no_violations():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "backtest.py"), "--days", "2", "--k", "3", "--json"],
                         capture_output=True, text=True, timeout=300, check=True, cwd=ROOT).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 1
    r = json.loads(lines[0])
    assert r["days"] == 2 and r["violations"] == 0 and r["k"] == 3
    assert set(r["shortfall_kwh"]) == set(r["regret_pct"]) == {"p50", "hedge", "scenario"}
    assert all(v >= 0 for v in r["shortfall_kwh"].values())
    assert r["solve_s_p95"] > 0 and set(r["bill"]) == {"p50", "hedge", "scenario", "perfect"}
