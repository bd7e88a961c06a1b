"""Accepted awards become the optimiser's commitments per plan slot."""
from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import optimizer
from vpp.market.commitments import awards_commitments

T0 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)


def award(direction: str, *slots: tuple[str, float]):
    return SimpleNamespace(payload={"direction": direction, "slots": [
        {"start": s, "awarded_w": w, "accepted_w": w} for s, w in slots]})


def test_awards_fill_the_plan_slots_of_their_award_slot():
    recs = [award("up", ("2026-11-25T00:30:00Z", 5000.0), ("2026-11-25T01:00:00Z", 2000.0)),
            award("up", ("2026-11-25T00:30:00+00:00", 1000.0)),
            award("down", ("2026-11-25T01:30:00Z", 3000.0)),
            award("up", ("2026-11-25T00:00:00Z", 0.0))]  # rejected: nothing held
    c = awards_commitments(recs, optimizer.Horizon(T0, 900, 8), duration_s=3600)
    assert list(c.award_up_w) == [0, 0, 6000, 6000, 2000, 2000, 0, 0]
    assert list(c.award_down_w) == [0, 0, 0, 0, 0, 0, 3000, 3000]
    assert c.duration_s == 3600 and c.dispatch_w is None


def test_no_award_in_the_horizon_is_no_commitment():
    recs = [award("up", ("2026-11-24T00:30:00Z", 5000.0))]
    assert awards_commitments(recs, optimizer.Horizon(T0, 1800, 4), 3600) is None
