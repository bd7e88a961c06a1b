"""LP first: a MILP whose LP relaxation already has integral binaries is solved.

With the cuts of :mod:`optimizer.tighten` the relaxation of typical site plans (on/off loads,
no simultaneous-flow binaries) is integral: its optimum is then feasible for the MILP and, as
a lower bound on it, optimal (gap 0) — one simplex solve instead of the MIP machinery (presolve,
cut rounds, heuristics, sub-MIPs), several times faster. Anything fractional falls back to the
ordinary MILP solve, which then costs one extra LP.
"""

from __future__ import annotations

import time

import pulp

from .lp import Model

__all__ = ["INTEGRALITY_TOL", "relaxation_if_integral"]

INTEGRALITY_TOL = 1e-6  # [-] a binary within this of 0 or 1 counts as integral


def relaxation_if_integral(m: Model, solver: pulp.LpSolver | None = None) -> tuple[str, str, float, float] | None:
    """Solve the LP relaxation of ``m`` (HiGHS, ``solve_relaxation``); if every binary is
    integral, leave that solution in the variables and return ``("HiGHS", "Optimal", 0.0,
    seconds)``, else ``None`` (variables then hold the relaxation: re-solve as a MILP).
    ``None`` also when ``m`` has no binaries or HiGHS fails."""
    if m.n_binaries == 0:
        return None
    o = m.problem.options
    solver = solver or pulp.HiGHS(msg=False, timeLimit=o.time_limit_s, threads=1, solve_relaxation=True)
    t0 = time.perf_counter()
    try:
        stats = m.lp.solve(solver)
    except Exception:  # noqa: BLE001 - the MILP path decides what to do with a failing HiGHS
        return None
    dt = time.perf_counter() - t0
    if not stats.has_solution or stats.status_str != "Optimal":
        return None
    for v in m.lp.variables():
        if v.cat == pulp.const.LpInteger:
            x = v.value()
            if x is None or abs(x - round(x)) > INTEGRALITY_TOL:
                return None
    return "HiGHS", "Optimal", 0.0, dt
