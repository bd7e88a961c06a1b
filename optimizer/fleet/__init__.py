"""Fleet planning: many homes (PV + battery + load) behind one feeder, in seconds.

:func:`plan_fleet` (:mod:`.plan`) runs the steps below on a :class:`FleetProblem`
(:mod:`.problem`) and returns a :class:`FleetPlan`.

Decomposition
-------------
0. **Recovery** (:func:`.aggregate.recovery`): homes that start below their floor charge as
   fast as their caps allow until they reach it; fixed load of the aggregate, credited to
   its soc0, no discharge capacity — the aggregate cannot "cover" one home's reserve with
   another's.
1. **Aggregate LP** (:mod:`.aggregate`, :func:`aggregate_problem` →
   :func:`optimizer.solve.solve`): all batteries as one virtual battery with per-slot power
   limits that already respect every home's own meter limits; the objective is the
   community bill at the feeder (buy · import − sell · export, CO2 price, degradation);
   ``soc_end`` applies to the fleet-average SoC.
   *EV sessions*: each home's meter headroom goes to recovery first, then to its plugged-in
   cars (reserved for the whole session window), then to its battery
   (:func:`.aggregate.home_caps`). Sessions sharing a window are one flexible load of the
   aggregate LP; a group the disaggregation cannot split is re-planned session by session
   (:func:`.repair.solve_aggregate`; exact, one more solve).
   *VPP commitments* (``FleetProblem.vpp``) are the site model's constraints
   (:func:`optimizer.model_vpp.add_vpp`) on the virtual battery: its power headroom sums
   the homes' caps, its energy above the (capacity-weighted) floor is the homes' summed
   energy above theirs, and a dispatch ``D`` of the homes' battery power is ``D + Σ_h r``
   for it.
2. **Disaggregation** (:mod:`.disaggregate`): the aggregate battery power is water-filled
   over the homes by energy above the floor (discharge) or room below ``soc_max`` (charge)
   within each home's caps; each home's SoC is stepped with its own efficiencies, so
   per-home floors and windows hold by construction. EV group power is split over its
   sessions (:func:`disaggregate_evs`).
3. **Repair and validation** (:mod:`.repair`, :mod:`.checks`): surplus beyond a home's or
   the feeder's export limit is curtailed; every home's and the feeder's limits are
   re-checked and the differences to the aggregate plan reported (:class:`FleetPlan`
   ``violations``, ``tracking_error_w``); awards and offers are re-checked on the homes
   (an undeliverable award is a violation; offers are cut to what the homes deliver). EV
   energy short at departure is ``ev_unmet_wh`` (a warning if more than the aggregate's).

Per-home arrays are ``(H, n)``: homes by row, slots by column; units W, fraction, Wh.
"""

from .aggregate import aggregate_problem
from .disaggregate import disaggregate, disaggregate_evs
from .plan import plan_fleet
from .problem import FleetPlan, FleetProblem

__all__ = ["FleetProblem", "FleetPlan", "plan_fleet", "aggregate_problem", "disaggregate", "disaggregate_evs"]
