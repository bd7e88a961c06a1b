"""Which planner the controller uses: one LP over the site, or fleet planning for a town.

``config.optimiser.planner`` picks it (:func:`planner_for`):

* ``site``  :func:`optimizer.solve` — one LP over every battery, EV session and VPP
  commitment (a community centre, a few homes).
* ``fleet`` :func:`fleet_solver` — the homes as one virtual battery planned by
  :func:`optimizer.fleet.plan_fleet` and disaggregated per home, in seconds for hundreds of
  homes (a town such as ``vpp town generate`` writes).

Both are ``Problem -> Schedule`` functions with the same contract, so the controller's plan
job, its validation and its fallback do not know which one ran.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

import optimizer
from vpp.config import SiteConfig

#: Default home meter limits [W]: 60 A service at 100/200 V (import); export limited by
#: the residential PV inverter.
HOME_IMPORT_W = 12_000.0
HOME_EXPORT_W = 10_000.0

Solver = Callable[[optimizer.Problem], optimizer.Schedule]


def planner_for(config: SiteConfig) -> Solver:
    """The ``Problem -> Schedule`` function ``config.optimiser.planner`` selects."""
    if config.optimiser.planner == "fleet":
        return fleet_solver(config)
    return optimizer.solve


def fleet_solver(config: SiteConfig, home_import_w: float = HOME_IMPORT_W,
                 home_export_w: float = HOME_EXPORT_W) -> Solver:
    """A ``Problem -> Schedule`` function that plans the batteries with
    :func:`optimizer.fleet.plan_fleet` instead of one LP over every battery.

    The controller's problem carries site totals; PV [W] is split over the batteries' homes
    in proportion to their array kWp and the load [W] evenly over the homes. The returned
    schedule is the aggregate LP's (site grid, cost, PV, load) with per-home ``battery_w``
    [W], ``soc``, ``floor`` and ``recovery`` (shortfall below the floor) [fraction] from the
    disaggregation; it is marked not
    validated when the fleet checks find a broken limit (the controller then keeps the
    previous plan). Home meter limits are ``home_import_w`` / ``home_export_w`` [W].

    EV sessions draw through the meter of their charger's home (``Device.home``; a charger
    of a home without a planned battery is on the feeder directly); the schedule's
    ``ev_w`` / ``ev_unmet_wh`` are per charger. VPP commitments (``Problem.vpp``) are held
    by the fleet: the homes' summed battery power follows the dispatch and their summed
    headroom covers the awards (an undeliverable award is a fleet violation, so the plan is
    not validated). Aggregator offers (``Problem.offers``) are sized on the virtual battery
    and cut per offer slot to what the homes can deliver (checked as awards are, with a
    reason in ``Offer.reason``); ``expected_activation_w`` is shared over the homes by
    capacity. Not planned by the fleet: deferrable loads (a warning says so). A problem
    without batteries goes to :func:`optimizer.solve`.
    """
    from optimizer.fleet import FleetProblem, plan_fleet

    home_of = {d.id: d.home for d in config.devices}
    kwp: dict[str | None, float] = {}
    for a in config.pv_arrays:
        h = home_of.get(a.inverter)
        kwp[h] = kwp.get(h, 0.0) + a.kwp
    total_kwp = sum(kwp.values()) or 1.0
    n_homes = len({d.home for d in config.devices if d.home}) or 1

    def solve(problem: optimizer.Problem) -> optimizer.Schedule:
        bats = problem.batteries
        if not bats:
            return optimizer.solve(problem)
        n = problem.horizon.n
        row_of_home = {home_of.get(b.id): i for i, b in enumerate(bats) if home_of.get(b.id)}
        ev_home = [row_of_home.get(home_of.get(e.charger_id), -1) for e in problem.evs]
        share = np.array([kwp.get(home_of.get(b.id), 0.0) for b in bats]) / total_kwp
        floor = np.vstack([np.broadcast_to(np.asarray(b.floor if b.floor is not None else 0.0, float), (n,))
                           for b in bats])
        fp = FleetProblem(
            horizon=problem.horizon,
            pv_w=np.outer(share, np.asarray(problem.pv_w, float)),
            load_w=np.tile(np.asarray(problem.load_w, float) / n_homes, (len(bats), 1)),
            capacity_wh=np.array([b.capacity_wh for b in bats]),
            max_charge_w=np.array([float(np.max(b.max_charge_w)) for b in bats]),
            max_discharge_w=np.array([float(np.max(b.max_discharge_w)) for b in bats]),
            soc0=np.array([b.soc0 for b in bats]), floor=floor,
            home_import_limit_w=home_import_w, home_export_limit_w=home_export_w,
            feeder=problem.grid, prices=problem.prices,
            eta_charge=np.array([b.eta_charge for b in bats]),
            eta_discharge=np.array([b.eta_discharge for b in bats]),
            soc_min=np.array([b.soc_min for b in bats]), soc_max=np.array([b.soc_max for b in bats]),
            options=problem.options, evs=tuple(problem.evs), ev_home=ev_home, vpp=problem.vpp,
            offers=problem.offers)
        plan = plan_fleet(fp)
        cap_total = float(sum(b.capacity_wh for b in bats)) or 1.0
        fl = np.clip(floor, fp.soc_min[:, None], fp.soc_max[:, None])  # as the fleet held it
        agg = plan.aggregate
        info = agg.solver
        if info is not None and plan.violations:
            info = dataclasses.replace(info, validated=False)
        warnings = list(plan.warnings) + plan.violations
        if problem.deferrable:
            warnings.append("fleet planner: deferrable loads are not planned")
        ev_w: dict[str, np.ndarray] = {}
        ev_unmet: dict[str, float] = {}
        for k, e in enumerate(problem.evs):
            ev_w[e.charger_id] = ev_w.get(e.charger_id, 0.0) + plan.ev_w[k]
            ev_unmet[e.charger_id] = ev_unmet.get(e.charger_id, 0.0) + float(plan.ev_unmet_wh[k])
        return dataclasses.replace(
            agg,
            battery_w={b.id: plan.battery_w[i] for i, b in enumerate(bats)},
            soc={b.id: plan.soc[i] for i, b in enumerate(bats)},
            floor={b.id: fl[i] for i, b in enumerate(bats)},
            recovery={b.id: np.clip(np.nan_to_num(fl[i] - plan.soc[i]), 0.0, None) for i, b in enumerate(bats)},
            # the virtual battery's expected activation, shared by capacity (site offers)
            expected_activation_w={b.id: act * (b.capacity_wh / cap_total) for b in bats for act in
                                   agg.expected_activation_w.values()},
            ev_w=ev_w, ev_unmet_wh=ev_unmet, solver=info, warnings=warnings)

    return solve
