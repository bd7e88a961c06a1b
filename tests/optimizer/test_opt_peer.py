"""Golden: the peer optimiser's reference problem (objective, key schedule facts)."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer import solve
from optimizer.examples import PEER_OPTIMUM, peer_problem




@pytest.mark.parametrize("n", [96, 192])
def test_peer_problem_matches_known_optimum(n, data_dir):
    p = peer_problem(data_dir / f"inputs_N{n}.csv")
    s = solve(p)
    assert s.solver.status == "Optimal" and s.solver.validated
    assert s.total_cost == pytest.approx(PEER_OPTIMUM[n], rel=1e-3)
    assert s.solver.objective == pytest.approx(s.total_cost, abs=1e-6)
    # key facts: each on/off load runs exactly 4 h at nominal power
    dt = 48 / n
    assert set(np.unique(s.deferrable_w["def0"])) <= {0.0, 3000.0}
    assert s.deferrable_w["def0"].sum() * dt == pytest.approx(12_000)
    assert s.deferrable_w["def1"].sum() * dt == pytest.approx(29_600)
    # battery ends where it started, stays in its window, never charges and discharges at once
    soc = s.soc["bat1"]
    assert soc[-1] == pytest.approx(0.5, abs=1e-6)
    assert soc.min() >= 0.2 - 1e-6 and soc.max() <= 0.95 + 1e-6
    assert np.all(np.minimum(s.grid_import_w, s.grid_export_w) < 1.0)
    assert s.grid_import_w.max() <= 12_000 + 1e-6 and s.grid_export_w.max() <= 10_000 + 1e-6
    assert np.abs(s.battery_w["bat1"]).max() <= 10_000 + 1e-6


def test_peer_schedule_exports_cleanly(data_dir):
    s = solve(peer_problem(data_dir / "inputs_N96.csv"))
    df = s.to_dataframe()
    assert len(df) == 96 and "soc[bat1]" in df.columns and "deferrable_w[def1]" in df.columns
    d = s.to_dict()
    import json

    back = json.loads(json.dumps(d))
    assert back["solver"]["solver"] == "HiGHS"
    assert back["total_cost"] == pytest.approx(s.total_cost)
    assert len(back["soc"]["bat1"]) == 96
