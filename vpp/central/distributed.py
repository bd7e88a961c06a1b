"""The central service's pluggable ``plan_towns`` on the distributed engine.

The service asks ``plan_towns(requests)`` with ``requests`` mapping town → a summary of what
the town last reported (duck-typed: ``start``, ``slot_s``, ``n_slots``, ``headroom_wh`` —
battery energy above the reserve floor [Wh]); it accepts an iterable of ``(town, body)``
pairs and issues each plan the moment it is yielded, with
``body = {"start": iso, "slot_s": s, "battery_w": [W per slot]}`` (the town's summed battery
power, > 0 = discharge).

:class:`DistributedPlanTowns` holds each town's config (the homes it plans, kept at the
centre), turns each summary into a :class:`~vpp.central.townplan.TownRequest` (every home at
its floor plus its capacity share of the reported headroom) and fans the towns out with
:func:`vpp.central.fanout.iter_plans`. Towns it has no config for, late towns and failed
towns get no body (they keep their local plan); plans with a broken limit are not sent.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from vpp.central.fanout import LATE, iter_plans
from vpp.central.townplan import town_request
from vpp.config import SiteConfig, updated
from vpp.timefmt import iso

log = logging.getLogger(__name__)

__all__ = ["DistributedPlanTowns"]


class DistributedPlanTowns:
    """``plan_towns`` for the central service (see the module docstring).

    ``configs``: town → its site config; ``client``: a Dask client (None = the default:
    ``$VPP_SCHEDULER_ADDRESS`` or a local cluster); ``timeout_s``: each round's deadline.
    """

    def __init__(self, configs: Mapping[str, SiteConfig], *, client: Any = None, timeout_s: float = 60.0) -> None:
        self.configs, self.client, self.timeout_s = dict(configs), client, timeout_s
        self.last_late: list[str] = []
        self.last_failed: dict[str, str] = {}

    def request(self, town: str, summary: Any):
        """The town's :class:`TownRequest` for the service's summary of it."""
        cfg = self.configs[town]
        slot_s, n = int(summary.slot_s), int(summary.n_slots)
        cfg = updated(cfg, optimiser={"slot_s": slot_s, "horizon_h": n * slot_s / 3600.0})
        req = town_request(cfg, summary.start, town=town)
        floor = np.asarray(req.floor if req.floor.ndim == 1 else req.floor[:, 0], float)
        cap = req.capacity_wh
        above = max(float(summary.headroom_wh), 0.0) / float((cap * req.eta_discharge).sum())
        req.soc0 = np.clip(floor + above, req.soc_min, req.soc_max)
        return req

    def __call__(self, requests: Mapping[str, Any]) -> Iterator[tuple[str, dict]]:
        reqs = []
        for town, summary in requests.items():
            if town not in self.configs:
                log.warning("town %s: no config at the centre, not planned here", town)
                continue
            reqs.append(self.request(town, summary))
        self.last_late, self.last_failed = [], {}
        for town, plan, why in iter_plans(reqs, client=self.client, timeout_s=self.timeout_s):
            if plan is None:
                if why == LATE:
                    self.last_late.append(town)
                else:
                    self.last_failed[town] = why
                continue
            if not plan.validated:
                self.last_failed[town] = "; ".join(plan.violations)
                continue
            yield town, {"start": iso(plan.start), "slot_s": plan.slot_s,
                         "battery_w": [round(float(w), 1) for w in plan.battery_w.sum(axis=0)]}
