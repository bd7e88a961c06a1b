"""The tightened deferrable-load formulation (cuts + LP first) keeps the optimum and the plan's
physics, and on the peer problem needs no MIP search."""

from __future__ import annotations

from contextlib import ExitStack
from unittest.mock import patch

import numpy as np
import pulp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import DeferrableLoad, EvSession, SolveOptions, solve
from optimizer.examples import PEER_OPTIMUM, peer_problem
from optimizer.model import build

from tests.optimizer.conftest import day_shape, site


def _plain_milp():
    """The formulation before tightening: no cuts, straight to the MILP."""
    stack = ExitStack()
    stack.enter_context(patch("optimizer.model.add_deferrable_cuts", lambda m: 0))
    stack.enter_context(patch("optimizer.solve.relaxation_if_integral", lambda m: None))
    return stack


@pytest.mark.parametrize("n", [96, 192])
def test_peer_relaxation_is_integral_and_optimal(n, data_dir):
    p = peer_problem(data_dir / f"inputs_N{n}.csv")
    m = build(p.cleaned())
    relaxed = pulp.HiGHS(msg=False, threads=1, solve_relaxation=True)
    m.lp.solve(relaxed)
    on = np.array([[v.value() for v in m.on[d]] for d in ("def0", "def1")])
    assert np.all(np.minimum(np.abs(on), np.abs(on - 1)) < 1e-6), "relaxation has fractional on/off"
    assert pulp.value(m.lp.objective) == pytest.approx(PEER_OPTIMUM[n], rel=1e-3)
    s = solve(p)
    assert s.solver.gap == 0.0 and s.solver.status == "Optimal" and s.solver.validated
    assert s.total_cost == pytest.approx(PEER_OPTIMUM[n], rel=1e-3)


def test_without_cuts_the_relaxation_is_weaker(data_dir):
    """The cuts are what closes the gap (guards against them silently not being added)."""
    p = peer_problem(data_dir / "inputs_N96.csv").cleaned()
    with _plain_milp():
        m = build(p)
    m.lp.solve(pulp.HiGHS(msg=False, threads=1, solve_relaxation=True))
    assert pulp.value(m.lp.objective) < PEER_OPTIMUM[96] * (1 + 5e-3)  # ≥ 0.5 % below the optimum


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pv_peak=st.floats(0, 9000), soc0=st.floats(0.05, 0.95), floor=st.floats(0.0, 0.5),
    p0=st.floats(500, 8000), p1=st.floats(0, 8000), steps0=st.integers(1, 8), steps1=st.integers(0, 6),
    curtailable=st.booleans(), ev=st.booleans(), sell=st.floats(0.0, 0.3),
)
def test_tightened_optimum_equals_plain_milp(pv_peak, soc0, floor, p0, p1, steps0, steps1, curtailable, ev, sell):
    n = 24
    defs = (DeferrableLoad("d0", p0, steps0),) + ((DeferrableLoad("d1", p1, steps1),) if p1 > 0 else ())
    evs = (EvSession("ev1", 8, 18, 9000.0, max_w=3000.0),) if ev else ()
    p = site(n, pv_w=day_shape(n, pv_peak), deferrable=defs, evs=evs, battery={"soc0": soc0, "floor": floor},
             options=SolveOptions(pv_curtailable=curtailable))
    p.prices.sell = np.full(n, sell)
    fast = solve(p)
    with _plain_milp():
        plain = solve(p)
    assert fast.solver.validated and plain.solver.validated
    assert fast.solver.objective == pytest.approx(plain.solver.objective, rel=1e-4, abs=1e-4)
    for d in defs:
        assert set(np.unique(fast.deferrable_w[d.id])) <= {0.0, d.power_w}
        assert fast.deferrable_w[d.id].sum() == pytest.approx(d.power_w * min(d.total_steps, n))
