"""Fleet planning across towns, fanned out per town on the distributed engine, and the
aggregation of the towns' offers into market lots.

Contract of :func:`plan_towns`
------------------------------
* One task per town (:func:`vpp.central.townplan.plan_town` on a :class:`TownRequest` of
  numpy arrays); towns run in parallel on the cluster's workers, in any order.
* **A worker lost mid-plan** (process killed, machine gone): the scheduler re-runs its task
  on another worker and the plan completes. A task that *raises* is retried ``retries``
  times, then that town is ``failed`` (it keeps its local plan).
* **A slow town does not hold up the others**: every town has ``timeout_s`` from submission;
  a town not planned by then is ``late``: its task is cancelled and the town keeps the local
  plan its edge agent already runs (the reserve floor is enforced there, too). Each town's
  plan is handed to ``on_plan`` as soon as it arrives, so dispatching a fast town's plan
  never waits for the slowest.
* Returns a :class:`FanoutResult`: the plans by town, the late and failed towns (reported),
  the market bid aggregated from the planned towns' offers (:func:`aggregate_bids`) and the
  wall time.

``plan_towns(requests)`` with no client uses :func:`vpp.central.engine.default_client`
(``$VPP_SCHEDULER_ADDRESS`` or a local two-worker cluster).
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from distributed import Client, TimeoutError as DaskTimeout, wait

from vpp.central.townplan import TownPlan, TownRequest, plan_town

log = logging.getLogger(__name__)

__all__ = ["FanoutResult", "MarketBid", "aggregate_bids", "iter_plans", "plan_towns", "plan_towns_serial", "LOT_W",
           "LATE"]

#: Market lot [W]: ΔkW is bid in whole multiples of this (1 MW, the balancing market's
#: minimum bid for an aggregated low-voltage resource list).
LOT_W = 1_000_000.0
#: Why a town has no central plan when its deadline passed.
LATE = "late: not planned within the deadline"


@dataclass
class MarketBid:
    """Offers of all planned towns per 30-min slot, rounded down to whole lots.

    ``up_w`` / ``down_w`` (m,) [W] are multiples of ``lot_w``; ``by_town`` gives each town's
    share (up, down) (m,) [W], pro rata to its own offer (never more than it offered);
    ``left_w`` is the up / down remainder below one lot, not bid."""

    slot_start: list[datetime]
    lot_w: float
    up_w: np.ndarray
    down_w: np.ndarray
    by_town: dict[str, tuple[np.ndarray, np.ndarray]]
    left_up_w: np.ndarray
    left_down_w: np.ndarray

    @property
    def lots_up(self) -> np.ndarray:
        return np.rint(self.up_w / self.lot_w).astype(int)

    @property
    def lots_down(self) -> np.ndarray:
        return np.rint(self.down_w / self.lot_w).astype(int)


@dataclass
class FanoutResult:
    """Outcome of one fan-out: ``plans`` by town; ``late`` towns (timed out) and ``failed``
    towns (error text) keep their local plans; ``bid`` from the planned towns (None when no
    town has offers); ``wall_s`` from submission to the last answer or the deadline."""

    plans: dict[str, TownPlan]
    late: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bid: MarketBid | None = None
    wall_s: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.late and not self.failed


def aggregate_bids(plans: Sequence[TownPlan], lot_w: float = LOT_W) -> MarketBid | None:
    """Sum the towns' offers per 30-min slot (aligned on slot start) and round down to lots.

    Only validated plans count (a plan with a broken limit offers nothing). Each town's share
    of the bid is its offer scaled by ``bid / total`` in that slot."""
    if lot_w <= 0:
        raise ValueError("lot_w must be > 0")
    towns = [p for p in plans if p.validated and p.offer_up_w.size]
    if not towns:
        return None
    starts = sorted({p.start + timedelta(seconds=p.offer_slot_s * j) for p in towns for j in range(p.offer_up_w.size)})
    col = {s: j for j, s in enumerate(starts)}
    m = len(starts)
    up, down = {}, {}
    for p in towns:
        idx = [col[p.start + timedelta(seconds=p.offer_slot_s * j)] for j in range(p.offer_up_w.size)]
        up[p.town], down[p.town] = np.zeros(m), np.zeros(m)
        up[p.town][idx] = np.clip(np.nan_to_num(p.offer_up_w), 0, None)
        down[p.town][idx] = np.clip(np.nan_to_num(p.offer_down_w), 0, None)
    tot_up, tot_down = sum(up.values()), sum(down.values())
    bid_up, bid_down = np.floor(tot_up / lot_w) * lot_w, np.floor(tot_down / lot_w) * lot_w
    f_up = np.divide(bid_up, tot_up, out=np.zeros(m), where=tot_up > 0)
    f_down = np.divide(bid_down, tot_down, out=np.zeros(m), where=tot_down > 0)
    return MarketBid(slot_start=starts, lot_w=lot_w, up_w=bid_up, down_w=bid_down,
                     by_town={t: (up[t] * f_up, down[t] * f_down) for t in up},
                     left_up_w=tot_up - bid_up, left_down_w=tot_down - bid_down)


def iter_plans(requests: Sequence[TownRequest], *, client: Client | None = None, timeout_s: float = 60.0,
               retries: int = 1, task: Callable[[TownRequest], TownPlan] = plan_town,
               ) -> Iterator[tuple[str, TownPlan | None, str]]:
    """The fan-out as it happens: ``(town, plan, "")`` as each town's plan arrives, then
    ``(town, None, why)`` for each failed town as it fails and each late town at the
    deadline (its task cancelled). See :func:`plan_towns` for the contract."""
    names = [r.town for r in requests]
    if len(set(names)) != len(names):
        raise ValueError(f"towns must be unique: {sorted({n for n in names if names.count(n) > 1})}")
    if timeout_s <= 0:
        raise ValueError("timeout_s must be > 0")
    if client is None:
        from vpp.central.engine import default_client
        client = default_client()
    run = uuid.uuid4().hex[:8]
    deadline = time.perf_counter() + timeout_s
    futures = {client.submit(task, r, key=f"plan-{r.town}-{run}", retries=retries, pure=False): r.town
               for r in requests}
    pending = set(futures)
    try:
        while pending:
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            try:
                done, pending = wait(pending, timeout=left, return_when="FIRST_COMPLETED")
            except (DaskTimeout, TimeoutError):
                break
            for f in done:
                town = futures[f]
                if f.status == "finished":
                    yield town, f.result(), ""
                else:
                    why = _error_text(f)
                    log.warning("town %s not planned centrally (%s): it keeps its local plan", town, why)
                    yield town, None, why
    finally:
        if pending:  # late (or the caller stopped early): free the workers
            client.cancel(list(pending))
    late = sorted(futures[f] for f in pending)
    if late:
        log.warning("towns %s not planned within %.1f s: they keep their local plans", late, timeout_s)
    for town in late:
        yield town, None, LATE


def plan_towns(requests: Sequence[TownRequest], *, client: Client | None = None, timeout_s: float = 60.0,
               retries: int = 1, lot_w: float = LOT_W, on_plan: Callable[[TownPlan], None] | None = None,
               task: Callable[[TownRequest], TownPlan] = plan_town) -> FanoutResult:
    """Plan every town on the cluster (see the module docstring for the contract).

    ``task`` is the per-town planner (the scale scenario wraps it to inject slow towns and
    lost workers); it must be importable by the workers."""
    t0 = time.perf_counter()
    out = FanoutResult(plans={})
    for town, plan, why in iter_plans(requests, client=client, timeout_s=timeout_s, retries=retries, task=task):
        if plan is not None:
            out.plans[town] = plan
            if on_plan is not None:
                on_plan(plan)
        elif why == LATE:
            out.late.append(town)
        else:
            out.failed[town] = why
    out.wall_s = time.perf_counter() - t0
    out.bid = aggregate_bids([out.plans[r.town] for r in requests if r.town in out.plans], lot_w)
    return out


def _error_text(f) -> str:  # noqa: ANN001 - a distributed Future
    try:
        e = f.exception(timeout=1)
    except Exception as x:  # noqa: BLE001 - a cancelled future has no exception to fetch
        return f"{f.status}: {type(x).__name__}"
    return f"{type(e).__name__}: {e}"


def plan_towns_serial(requests: Sequence[TownRequest], lot_w: float = LOT_W) -> FanoutResult:
    """The same plans in this process, one town after another (the baseline and the
    reference the distributed plan must equal)."""
    t0 = time.perf_counter()
    plans = {r.town: plan_town(r) for r in requests}
    return FanoutResult(plans=plans, bid=aggregate_bids(list(plans.values()), lot_w),
                        wall_s=time.perf_counter() - t0)
