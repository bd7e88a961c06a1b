"""Repairs of what the aggregate plan leaves infeasible for single homes.

* EV groups (:func:`solve_aggregate`): sessions sharing a window are one flexible load of the
  aggregate LP; a group the disaggregation cannot split over its sessions (one left short
  although the group got its energy) is re-planned session by session (exact; one more
  solve).
* Meters (:func:`repair_meters`): surplus beyond a home's export limit or the feeder export
  limit is curtailed (proportionally to PV output); the homes curtail at least the share
  of PV the aggregate curtailed to hold feeder room for up offers; load beyond a home's
  import limit is unserved.

Per-home arrays are ``(H, n)`` [W]; homes by row, slots by column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..schedule import Schedule
from ..solve import solve
from .aggregate import aggregate_problem, ev_groups
from .disaggregate import disaggregate_evs
from .problem import FleetProblem

__all__ = ["HomeMeters", "repair_meters", "solve_aggregate"]


def solve_aggregate(fp: FleetProblem, a: dict[str, np.ndarray], caps: dict[str, np.ndarray]
                    ) -> tuple[Schedule, np.ndarray]:
    """Step 1 with the EV repair: the aggregate plan and each EV session's power ``(S, n)``
    [W] split from its group's (:func:`~optimizer.fleet.disaggregate.disaggregate_evs`).

    A session short while its group got all its energy means the group could not be split:
    each of that group's sessions is planned on its own (exact) in one re-solve.
    """
    dt = fp.horizon.dt_h
    need = np.array([max(float(s.energy_wh), 0.0) for s in fp.evs])
    solo: frozenset[int] = frozenset()
    for _ in range(2):
        agg = solve(aggregate_problem(fp, a, caps, solo))
        groups, group_of = ev_groups(fp, caps["ev_cap"], solo)
        gw = np.zeros((len(groups), fp.horizon.n))
        for g, grp in enumerate(groups):
            gw[g] = agg.ev_w.get(grp.charger_id, 0.0)
        ev = disaggregate_evs(fp, gw, group_of, caps["ev_cap"])
        short = need - ev.sum(axis=1) * dt
        g_unmet = np.array([agg.ev_unmet_wh.get(g.charger_id, 0.0) for g in groups])
        bad = {int(group_of[k]) for k in np.flatnonzero(short > 1.0)
               if group_of[k] >= 0 and g_unmet[group_of[k]] < 1.0 and k not in solo}
        if not bad:
            break
        solo = solo | frozenset(int(k) for k in np.flatnonzero(np.isin(group_of, list(bad))))
    return agg, ev


@dataclass
class HomeMeters:
    """Each home's meter after the repairs ``(H, n)`` [W] and the feeder (n,) [W]:
    ``grid_w`` > 0 import (incl. the home's EVs); ``import_w`` / ``export_w`` ≥ 0 at the
    feeder (incl. EVs not behind a home's meter)."""

    curtail_w: np.ndarray
    grid_w: np.ndarray
    unserved_w: np.ndarray
    import_w: np.ndarray
    export_w: np.ndarray


def repair_meters(fp: FleetProblem, a: dict[str, np.ndarray], caps: dict[str, np.ndarray], agg: Schedule,
                  bw: np.ndarray, ev: np.ndarray) -> HomeMeters:
    """Home meters for battery power ``bw`` ``(H, n)`` and EV power ``ev`` ``(S, n)`` [W]
    with PV curtailed to the home and feeder export limits (see module docstring)."""
    eh = caps["ev_home"]
    ev_h = np.zeros_like(bw)
    if len(fp.evs):
        np.add.at(ev_h, eh[eh >= 0], ev[eh >= 0])
    ev_feeder = ev[eh < 0].sum(axis=0) if len(fp.evs) else 0.0
    pv, load = a["pv_w"], a["load_w"] + ev_h
    curt = np.zeros_like(pv)
    grid = load - pv - bw  # home meter before curtailment, > 0 import
    # home export limit: curtail the excess
    over = np.clip(-grid - a["home_export_limit_w"][:, None], 0, None)
    curt += np.minimum(over, pv)
    if fp.offers is not None:  # the aggregate may curtail to hold feeder room for up offers:
        # the homes curtail as much, in proportion to their PV
        tot = pv.sum(axis=0)
        frac = np.divide(np.asarray(agg.pv_curtail_w, float), tot, out=np.zeros_like(tot), where=tot > 0)
        curt = np.maximum(curt, pv * np.clip(frac, 0.0, 1.0))
    grid = load - pv + curt - bw
    # feeder export limit: curtail proportionally to remaining PV
    feeder = grid.sum(axis=0) + ev_feeder
    excess = np.clip(-feeder - fp.feeder.export_limit_w, 0, None)
    if excess.any():
        avail = pv - curt
        tot = avail.sum(axis=0)
        frac = np.divide(excess, tot, out=np.zeros_like(excess), where=tot > 0)
        curt += avail * np.minimum(frac, 1.0)
        grid = load - pv + curt - bw
    unserved = np.clip(grid - a["home_import_limit_w"][:, None], 0, None)
    grid = grid - unserved
    feeder = grid.sum(axis=0) + ev_feeder
    return HomeMeters(curtail_w=curt, grid_w=grid, unserved_w=unserved,
                      import_w=np.clip(feeder, 0, None), export_w=np.clip(-feeder, 0, None))
