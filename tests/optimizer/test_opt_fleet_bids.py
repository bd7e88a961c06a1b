"""Day-ahead offers of a town: sized on the fleet's aggregate problem, checked on the homes as
awards are (energy above each home's own floor ≥ offer × duration, power headroom, feeder
room) and cut to what the homes can deliver (real HiGHS, generated towns)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timezone

import numpy as np
import pytest

from optimizer import MarketPrices, OfferParams
from optimizer.examples import example_fleet
from optimizer.fleet import plan_fleet
from optimizer.fleet.checks import check_offers, check_vpp, offers_as_awards
from simulators.town import generate_town
from vpp.config import parse_config
from vpp.control.loop import Controller
from vpp.market.bids import plan_bids

DAY = date(2026, 6, 2)
NOW = datetime(2026, 6, 1, 3, 0, tzinfo=timezone.utc)  # 12:00 JST the day before


def town(capacity_price: float):
    data = generate_town(20, 1)
    data.setdefault("vpp", {}).update(capacity_price_per_kw=capacity_price, energy_price_per_kwh=20.0)
    cfg = parse_config(data, "<town20>")
    assert cfg.optimiser.planner == "fleet"
    return cfg


def home_arrays(cfg, sched):
    """Per-home capacity [Wh], efficiencies, soc_max (H,), planned SoC and floor (H, n)."""
    bats = [b for b in Controller(cfg).batteries if b.id in sched.soc]
    r = [b.ratings for b in bats]
    cap = np.array([x.capacity_wh for x in r])
    etac = np.array([x.charge_efficiency for x in r])
    etad = np.array([x.discharge_efficiency for x in r])
    smax = np.array([x.soc_max for x in r])
    soc = np.vstack([sched.soc[b.id] for b in bats])
    floor = np.vstack([sched.floor[b.id] for b in bats])
    return cap, etac, etad, smax, soc, floor


def test_town_offers_are_sized_on_the_fleet_and_deliverable_by_the_homes():
    cfg = town(5.0)
    r = plan_bids(cfg, DAY, now=NOW, soc={})
    sched = r.schedule
    assert len(sched.soc) >= 20  # per home, not one virtual battery
    offered = [s for s in r.slots if s.up_w > 0 or s.down_w > 0]
    assert len(offered) > 24 and sum(s.up_w for s in offered) > 0 and sum(s.down_w for s in offered) > 0
    assert not any("not planned" in w or "not deliverable" in w for w in sched.warnings)
    cap, etac, etad, smax, soc, floor = home_arrays(cfg, sched)
    assert soc.shape[0] == len(sched.soc)
    # floors hold for every home in every slot of the plan
    assert np.all(soc >= floor - 1e-6)
    # per-home check, as awards are checked, on the expected trajectory the offers were
    # sized on (the SoC the aggregate plans carries the expected activation of the offers)
    dt = sched.slot_s / 3600.0
    C = cap.sum()
    ec, ed = float(cap @ etac / C), float(cap @ etad / C)
    soc_e = soc + np.cumsum(r.activation_ratio * dt / C * (ec * sched.offer_down_w - sched.offer_up_w / ed))
    tau = r.duration_s / 3600.0
    k = 1800 // sched.slot_s
    for s in offered:
        j0 = int(round((s.start - sched.start).total_seconds() / sched.slot_s))
        for t in range(j0, min(sched.n, j0 + k)):
            for x in (soc_e[:, t - 1], soc_e[:, t]):  # slot start and end
                up_wh = float((etad * cap * np.clip(x - floor[:, t], 0, None)).sum())
                dn_wh = float((cap / etac * np.clip(smax - x, 0, None)).sum())
                assert up_wh >= s.up_w * tau - 1.0, (s.start, t)
                assert dn_wh >= s.down_w * tau - 1.0, (s.start, t)
    # offers cut by the homes' check say so, and keep what the homes can deliver
    for s in offered:
        if s.reason:
            assert s.reason.startswith("homes cannot deliver the aggregate offer")


def test_town_without_capacity_prices_offers_nothing():
    r = plan_bids(town(0.0), DAY, now=NOW, soc={})
    assert all(s.up_w == 0 and s.down_w == 0 for s in r.slots)
    assert all(s.reason for s in r.slots)


def test_offers_beyond_the_homes_are_cut_with_a_reason():
    fp = example_fleet(n_homes=20, n=48, slot_s=1800, seed=4)
    fp.offers = OfferParams(MarketPrices(capacity_up=5.0, capacity_down=5.0, energy_up=20.0), slot_s=1800,
                            duration_s=3600.0, activation_ratio=0.0)
    plan = plan_fleet(fp)
    agg = plan.aggregate
    assert plan.violations == [] and agg.offer_up_w.max() > 0
    head = {"up_wh": plan.headroom_up_wh, "down_wh": plan.headroom_down_wh,
            "up_w": plan.headroom_up_w, "down_w": plan.headroom_down_w}
    imp, exp = plan.feeder_import_w, plan.feeder_export_w
    # the aggregate's own offers pass the homes' check as awards
    ok = dataclasses.replace(agg, award_shortfall_up_w=None, award_shortfall_down_w=None)
    assert check_vpp(offers_as_awards(fp, agg), ok, plan.battery_w, imp, exp, head) == []
    # three times as much is not deliverable: cut, with the reason, and then deliverable
    big = dataclasses.replace(agg, offer_up_w=3 * agg.offer_up_w, offer_down_w=3 * agg.offer_down_w,
                              offers=[dataclasses.replace(o, up_w=3 * o.up_w, down_w=3 * o.down_w) for o in agg.offers])
    bad = dataclasses.replace(big, award_shortfall_up_w=None, award_shortfall_down_w=None)
    assert check_vpp(offers_as_awards(fp, big), bad, plan.battery_w, imp, exp, head) != []
    cut = check_offers(fp, big, imp, exp, head)
    cut_slots = [o for o in cut.offers if o.reason.startswith("homes cannot deliver")]
    assert cut_slots and any("offers cut" in w for w in cut.warnings)
    for o, b in zip(cut.offers, big.offers):
        assert o.up_w <= b.up_w and o.down_w <= b.down_w
    c2 = dataclasses.replace(cut, award_shortfall_up_w=None, award_shortfall_down_w=None)
    assert check_vpp(offers_as_awards(fp, cut), c2, plan.battery_w, imp, exp, head) == []
    assert cut.expected_revenue < 3 * agg.expected_revenue  # revenue is linear in the ΔkW offered


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
