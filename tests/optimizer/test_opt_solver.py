"""Solver choice: CBC (``pulp[cbc]``, COIN_CMD) solves the peer problem to the same optimum,
both when selected and as the fallback when HiGHS fails."""

from __future__ import annotations

import dataclasses

import pulp
import pytest

from optimizer import SolveOptions, solve
from optimizer.examples import PEER_OPTIMUM, peer_problem


def test_cbc_selected_solves_peer_problem(data_dir):
    p = peer_problem(data_dir / "inputs_N96.csv", SolveOptions(solver="cbc", pv_curtailable=False))
    s = solve(p)
    assert s.solver.solver == "CBC"
    assert s.solver.validated
    assert s.total_cost == pytest.approx(PEER_OPTIMUM[96], rel=1e-3)


def test_cbc_is_the_fallback_when_highs_fails(data_dir, monkeypatch):
    def broken(self, lp):
        raise pulp.PulpSolverError("HiGHS unavailable")

    monkeypatch.setattr(pulp.HiGHS, "actualSolve", broken)
    s = solve(peer_problem(data_dir / "inputs_N96.csv"))
    assert s.solver.solver == "CBC" and s.solver.validated
    assert s.total_cost == pytest.approx(PEER_OPTIMUM[96], rel=1e-3)
    assert dataclasses.asdict(s.solver)["n_binaries"] > 0
