"""Every benchmark script starts as a script (``python bench/X.py --help``): its folder on
sys.path must not shadow a library (bench/ocpp.py vs the ``ocpp`` package) or break imports."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: run by the peer's own interpreter (EMHASS in .peer/venv), not ours
OTHER_PYTHON = {"peer_emhass.py"}


@pytest.mark.slow
def test_every_bench_script_starts():
    scripts = sorted(p for p in (ROOT / "bench").glob("*.py") if p.name not in OTHER_PYTHON)
    assert len(scripts) >= 10
    procs = {p.name: subprocess.Popen([sys.executable, str(p), "--help"], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, cwd=ROOT) for p in scripts}
    failed = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0 or "usage" not in out.lower():
            failed[name] = err[-800:]
    assert not failed, failed
