"""bench/optimizer.py's peer bookkeeping: a measured peer is labelled as measured in this run,
and stored figures are used (and said to be) only when the peer cannot run."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_optimizer", ROOT / "bench" / "optimizer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_measured_peer_gives_the_ratio(bench):
    r = {"total_s": 0.02}
    bench.add_peer(r, 96, {"total_s": 0.4, "version": "0.18.7", "objective": -1.98409})
    assert r["peer_s"] == 0.4 and r["ratio"] == pytest.approx(0.05)
    assert r["peer_source"].startswith("measured") and "this run" in r["peer_source"]
    assert r["peer_rel_error"] < 1e-5


def test_missing_peer_falls_back_to_stored_figures_and_says_so(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "PEER_PYTHON", tmp_path / "no-venv" / "bin" / "python")
    assert bench.run_peer(96, 1) is None
    r = {"total_s": 0.0376}
    bench.add_peer(r, 96, None)
    assert r["peer_source"].startswith("stored") and "not run" in r["peer_source"]
    assert r["peer_s"] == bench.PEER_STORED_S[96] and r["ratio"] == pytest.approx(0.1)
