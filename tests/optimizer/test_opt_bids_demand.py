"""Bids and the 高圧 demand charge: a down offer is extra import when called, so
:func:`vpp.market.bids.plan_bids` prices it against the month's peak; an offer that would set
a new monthly peak is reduced unless its revenue pays for that peak."""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vpp.config import read_config, updated
from vpp.config_market import DemandCharge
from vpp.market.bids import plan_bids

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "examples" / "community-centre.yaml"
JST = ZoneInfo("Asia/Tokyo")
DAY = date(2026, 6, 22)
NOW = datetime(2026, 6, 21, 11, 30, tzinfo=JST)


def site(demand):
    cfg = read_config(CONFIG)
    return updated(cfg, vpp={"capacity_price_per_kw": 2.0, "energy_price_per_kwh": 20.0},
                   bill=updated(cfg.bill, demand=None if demand is None else DemandCharge(**demand)))


def worst_case(res):
    """Per bid-day slot: the metered 30-min import [W] if the down offer were called in
    full (planned net import + offered down), and the month's peak the plan pays for [W]."""
    s = res.schedule
    idx = pd.date_range(s.start, periods=s.n, freq=f"{s.slot_s}s")
    net = pd.Series(np.asarray(s.grid_import_w) - np.asarray(s.grid_export_w), index=idx)
    imp = pd.Series(np.asarray(s.grid_import_w), index=idx)
    net30 = net.resample("1800s", origin="epoch").mean()
    planned_peak = float(imp.resample("1800s", origin="epoch").mean().max())
    called = {sl.start: float(net30.get(pd.Timestamp(sl.start), np.nan)) + sl.down_w for sl in res.slots if sl.down_w > 0}
    return called, planned_peak


def test_down_offers_never_set_a_new_peak_for_free():
    free = plan_bids(site(None), DAY, now=NOW, soc={"bat1": 0.6})
    called, peak = worst_case(free)
    # without the demand charge a called down offer would meter above the plan's own peak
    assert called and max(called.values()) > peak + 1000.0
    # with it (no store: the month so far is 0 W), a new kW of peak costs more than any offer earns
    priced = plan_bids(site({"unit_price_per_kw": 1800.0, "shaving_price_per_kw": 10_000.0}), DAY, now=NOW,
                       soc={"bat1": 0.6})
    called_p, peak_p = worst_case(priced)
    assert all(v <= peak_p + 1.0 for v in called_p.values()), (called_p, peak_p)
    assert sum(s.down_w for s in priced.slots) < sum(s.down_w for s in free.slots)


def test_an_offer_worth_more_than_its_peak_is_kept():
    # a new kW of peak at 0.001 yen against 2 yen/kW per slot of capacity: the offers stay,
    # their peak is priced in the plan's objective but does not outweigh their revenue
    free = plan_bids(site(None), DAY, now=NOW, soc={"bat1": 0.6})
    cheap = plan_bids(site({"unit_price_per_kw": 1800.0, "shaving_price_per_kw": 0.001}), DAY, now=NOW,
                      soc={"bat1": 0.6})
    called, peak = worst_case(cheap)
    assert max(called.values()) > peak + 1000.0  # a call would set a new peak, and that is accepted
    assert sum(s.down_w for s in cheap.slots) >= 0.99 * sum(s.down_w for s in free.slots)
