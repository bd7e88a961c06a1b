"""Per-town planning at the centre: the pluggable ``plan_towns`` contract and a serial default.

``plan_towns(requests) -> plans``: ``requests`` maps town id → :class:`PlanRequest` (what the
town last reported), the result maps town id → a ``plans`` command body
(``{"start": iso, "slot_s": s, "battery_w": [W per slot]}``, site battery power > 0 =
discharge; see :mod:`vpp.edge.commands`). A town missing from the result gets no new plan
(it keeps its lease or its local plan). A distributed implementation (Dask/Ray) plugs in
with the same signature; the edge re-checks every plan against its ratings and reserve.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from vpp.slots import SLOT_S
from vpp.timefmt import iso


@dataclass(frozen=True)
class PlanRequest:
    """One town's planning input [SI units]: from ``start``, ``n_slots`` slots of ``slot_s``."""

    town: str
    start: datetime
    headroom_wh: float  #: battery energy above the reserve floor
    room_wh: float  #: battery energy that can still be charged
    max_discharge_w: float
    max_charge_w: float
    n_slots: int = 96
    slot_s: int = SLOT_S
    net_load_w: tuple[float, ...] = field(default=())  #: forecast net import per slot, if known


#: ``plan_towns(requests)``: a dict town → plan, or an iterable of ``(town, plan)`` pairs
#: yielded as each town's plan is ready (see ``CentralService.plan_round_async``).
PlanTowns = Callable[[Mapping[str, PlanRequest]], Mapping[str, dict] | Iterable[tuple[str, dict]]]


def peak_shave(req: PlanRequest, share: float = 0.5, peak_slots: int = 4) -> dict:
    """A town's plan: discharge ``share`` of its headroom over its ``peak_slots`` highest
    net-load slots (flat over the first slots without a forecast), within its rating."""
    n = max(req.n_slots, 1)
    loads = list(req.net_load_w[:n]) + [0.0] * (n - len(req.net_load_w[:n]))
    order = sorted(range(n), key=lambda k: -loads[k])[:max(1, min(peak_slots, n))]
    h = req.slot_s / 3600.0
    w = min(share * max(req.headroom_wh, 0.0) / (len(order) * h), req.max_discharge_w)
    plan = [0.0] * n
    for k in order:
        plan[k] = round(w, 1)
    return {"start": iso(req.start), "slot_s": req.slot_s, "battery_w": plan}


def serial_plan_towns(requests: Mapping[str, PlanRequest]) -> dict[str, dict]:
    """The default ``plan_towns``: :func:`peak_shave` town after town in this process."""
    return {town: peak_shave(req) for town, req in requests.items()}
