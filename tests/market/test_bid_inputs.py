"""The bid export of a running site plans with the reserve in force (an operator's floor),
not the config file's."""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np

from vpp.config import read_config
from vpp.control.reserve_policy import ReservePolicy
from vpp.market.bid_inputs import site_bid
from vpp.market.ledger import Ledger
from vpp.services import SiteServices

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy/examples/community-centre.yaml"
NOW = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)  # 10:00 JST, before the 14:00 deadline


def services_with_floor(cfg, floor_pct: float | None) -> SiteServices:
    policy = ReservePolicy(cfg.reserve, lambda: NOW)
    if floor_pct is not None:
        policy.set_reserve("op-1", floor_pct=floor_pct)
    return SiteServices(lambda s, e: [], lambda: NOW, soc_of=lambda dev: 0.8, config=cfg, reserve_policy=policy)


def test_bids_plan_on_the_operators_floor(tmp_path):
    cfg = read_config(EXAMPLE)
    day = date(2026, 11, 26)
    ledger = Ledger.open(tmp_path / "ledger.sqlite", clock=lambda: NOW)
    try:
        base, _ = site_bid(cfg, services_with_floor(cfg, None), ledger, day)
        raised, _ = site_bid(cfg, services_with_floor(cfg, 60.0), ledger, day)
    finally:
        ledger.close()
    assert cfg.reserve.floor_pct == 30.0  # the config itself is untouched
    floors = lambda r: np.concatenate([np.asarray(v, dtype=float) for v in r.schedule.floor.values()])  # noqa: E731
    assert floors(base).max() < 0.60 and np.allclose(floors(raised), 0.60)
