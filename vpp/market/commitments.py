"""Accepted awards as the optimiser's commitments (``optimizer.VppCommitments``).

From the moment an award is accepted the plan must keep it deliverable: every re-plan gets,
per plan slot, the awarded up (more discharge) and down (more charge) power [W] of the
30-min award slot it lies in, to be sustainable for ``vpp.duration_s``
(:func:`optimizer.model.add_vpp`). Dispatches are not passed on: the dispatch book applies
them on top of the plan in real time (passing them too would count a delta twice).

Usage (the runtime)::

    controller.commitments_source = lambda start, horizon: awards_commitments(
        ledger.query(kinds=["award"]), horizon, config.vpp.duration_s)
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np

import optimizer

from vpp.slots import SLOT_S as AWARD_SLOT_S  # noqa: E402


def _parse(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)


def awards_by_slot(records: Iterable) -> dict[str, dict[datetime, float]]:
    """``{"up"|"down": {award slot start (UTC): accepted power [W]}}`` summed over ``award``
    ledger records (rejected awards carry 0 W)."""
    out: dict[str, dict[datetime, float]] = {"up": {}, "down": {}}
    for r in records:
        p = r.payload
        side = out.get(p.get("direction"))
        if side is None:
            continue
        for s in p.get("slots", ()):
            w = float(s.get("accepted_w", 0.0))
            if w > 0:
                t = _parse(s["start"])
                side[t] = side.get(t, 0.0) + w
    return out


def awards_commitments(records: Iterable, horizon: optimizer.Horizon,
                       duration_s: float) -> optimizer.VppCommitments | None:
    """Per plan slot of ``horizon``: the awarded up/down power [W] of the award slot
    containing it; ``None`` when no award touches the horizon."""
    by = awards_by_slot(records)
    up, down = np.zeros(horizon.n), np.zeros(horizon.n)
    start = horizon.start.astimezone(UTC)
    for k in range(horizon.n):
        t = start + timedelta(seconds=k * horizon.slot_s)
        slot = datetime.fromtimestamp(t.timestamp() // AWARD_SLOT_S * AWARD_SLOT_S, UTC)
        up[k] = by["up"].get(slot, 0.0)
        down[k] = by["down"].get(slot, 0.0)
    if not up.any() and not down.any():
        return None
    return optimizer.VppCommitments(award_up_w=up, award_down_w=down, duration_s=float(duration_s))
