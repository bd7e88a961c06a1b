"""Golden: co-optimised aggregator offers (capacity vs arbitrage, deliverability under
uncertainty, the reserve floor, bad prices)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import MarketPrices, OfferParams, PriceError, forecast_quantiles, solve
from optimizer.model import pessimistic_margins

N, SLOT = 96, 900  # 24 h at 15 min; 48 offer slots of 30 min


def offered(make_site, prices: MarketPrices, duration_s=3600.0, ratio=0.2, quantiles=None, **kw):
    p = make_site(n=N, slot_s=SLOT, **kw)
    h = (np.arange(N) + 0.5) * 24 / N
    p.pv_w = np.clip(5000.0 * np.sin(np.pi * (h - 6) / 12), 0, None)
    p.offers = OfferParams(prices, duration_s=duration_s, activation_ratio=ratio, **(quantiles or {}))
    return p


def full_activation_violations(p, s) -> list[str]:
    """Independently replay a full call of every offered slot, from every plan slot in it,
    for the product duration, with the pessimistic site margins taken by the battery, through
    the plan's SoC arithmetic (charge at η_c, discharge at 1/η_d on the *net* power)."""
    b = p.batteries[0]
    dt = p.horizon.dt_h
    k = p.offers.slot_s // p.horizon.slot_s
    w = int(np.ceil(p.offers.duration_s / p.horizon.slot_s))
    d_up, d_dn = pessimistic_margins(p.cleaned())
    soc, base, floor = s.soc[b.id], s.battery_w[b.id], np.nan_to_num(s.floor[b.id], nan=b.soc_min)
    out = []
    for j, o in enumerate(s.offers):
        for side, x, d in (("up", o.up_w, d_up), ("down", o.down_w, d_dn)):
            if x <= 0:
                continue
            for r in range(j * k, (j + 1) * k):
                level = soc[r - 1] if r else b.soc0
                for u in range(r, min(p.horizon.n, r + w)):
                    net = base[u] + (x + d[u] if side == "up" else -(x + d[u]))
                    if net > b.max_discharge_w + 1 or -net > b.max_charge_w + 1:
                        out.append(f"slot {j} {side}: {net:.0f} W beyond the power rating at t{u}")
                    level -= dt / b.capacity_wh * (max(net, 0) / b.eta_discharge - b.eta_charge * max(-net, 0))
                    if side == "up" and level < floor[u] - 1e-6:
                        out.append(f"slot {j} up from t{r}: SoC {level:.4f} < floor {floor[u]:.3f} at t{u}")
                    if side == "down" and level > b.soc_max + 1e-6:
                        out.append(f"slot {j} down from t{r}: SoC {level:.4f} > soc_max at t{u}")
    return out


def throughput_kwh(s) -> float:
    return float(np.abs(s.battery_w["bat1"]).sum() * s.slot_s / 3.6e6)


def test_high_capacity_prices_hold_capacity_instead_of_arbitrage(make_site):
    base = offered(make_site, MarketPrices(0.0, 0.0))
    plain = solve(base)
    assert plain.offers and all(o.up_w == 0 and o.down_w == 0 for o in plain.offers)
    assert throughput_kwh(plain) > 5  # TOU + PV: the battery cycles without offers
    # no expected activation here: its compensation would be throughput of its own
    p = offered(make_site, MarketPrices(capacity_up=50.0, capacity_down=50.0, energy_up=30.0), ratio=0.0)
    s = solve(p)
    assert s.solver.validated, s.warnings
    up = np.array([o.up_w for o in s.offers])
    dn = np.array([o.down_w for o in s.offers])
    assert (up > 0).all() and (dn > 0).all()
    # without offers the energy above the floor is spent on the bill (night load, evening
    # peak); with dear capacity it is held: SoC stays mid-window so both sides stay deliverable
    assert plain.soc["bat1"].min() == pytest.approx(0.3, abs=1e-6)
    assert s.soc["bat1"].min() > 0.4 and s.soc["bat1"].max() < 0.8
    # the energy bill gets worse, and the capacity revenue more than pays for it
    assert s.total_cost > plain.total_cost + 0.1
    assert s.expected_revenue > 10 * (s.total_cost - plain.total_cost)
    assert s.expected_revenue == pytest.approx(sum(o.expected_revenue for o in s.offers))
    assert s.expected_revenue > 50 * (up.sum() + dn.sum()) / 1000 - 1e-6
    assert s.revenue_at_risk == 0  # nothing expected to be dispatched, nothing at risk
    assert full_activation_violations(p, s) == []
    s2 = solve(offered(make_site, MarketPrices(capacity_up=50.0, capacity_down=50.0, energy_up=30.0)))
    assert 0 < s2.revenue_at_risk < s2.expected_revenue
    assert s2.revenue_at_risk == pytest.approx(sum(0.2 * 0.5 * 30.0 * o.up_w / 1000 for o in s2.offers))


def test_zero_capacity_prices_offer_nothing_and_leave_the_plan_alone(make_site):
    plain = solve(make_site(n=N, slot_s=SLOT))
    s = solve(offered(make_site, MarketPrices(capacity_up=0.0, capacity_down=0.0, energy_up=100.0, energy_down=100.0)))
    assert all(o.up_w == 0 and o.down_w == 0 and o.expected_revenue == 0 for o in s.offers)
    assert all(o.reason == "no capacity price" for o in s.offers)
    assert s.expected_revenue == 0 and s.revenue_at_risk == 0
    assert s.total_cost == pytest.approx(plain.total_cost, abs=1e-6)


def test_missing_and_blocked_slots_are_not_offered(make_site):
    cap = np.full(48, 20.0)
    cap[10] = np.nan
    p = offered(make_site, MarketPrices(capacity_up=cap, capacity_down=cap))
    p.offers.blocked = {30: "storm mode"}
    s = solve(p)
    assert s.offers[10].up_w == 0 and s.offers[10].reason == "no capacity price"
    assert s.offers[30].up_w == 0 and s.offers[30].down_w == 0 and s.offers[30].reason == "storm mode"
    assert s.offers[11].up_w > 0


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cap_up=st.lists(st.floats(0.0, 40.0), min_size=48, max_size=48),
    cap_dn=st.lists(st.floats(0.0, 40.0), min_size=48, max_size=48),
    floor=st.floats(0.2, 0.7),
    soc0=st.floats(0.1, 0.95),
    duration_s=st.sampled_from([1800.0, 3600.0, 10800.0]),
    spread=st.floats(0.0, 0.4),
)
def test_offers_deliverable_in_the_pessimistic_case_and_floor_never_crossed(
        make_site, cap_up, cap_dn, floor, soc0, duration_s, spread):
    p0 = make_site(n=N, slot_s=SLOT)
    rng = np.random.default_rng(1)
    pv_lo, _, pv_hi = forecast_quantiles(rng.normal(0, 1500 * spread + 1e-9, 200), p0.pv_w, q=0.1)
    ld_lo, _, ld_hi = forecast_quantiles(rng.normal(0, 800 * spread + 1e-9, 200), p0.load_w, q=0.1)
    q = dict(pv_low_w=pv_lo, pv_high_w=pv_hi, load_low_w=ld_lo, load_high_w=ld_hi)
    p = offered(make_site, MarketPrices(np.array(cap_up), np.array(cap_dn), energy_up=15.0),
                duration_s=duration_s, quantiles=q, battery={"floor": floor, "soc0": soc0})
    s = solve(p)
    assert s.solver.validated, s.warnings
    soc = s.soc["bat1"]
    hard = s.recovery["bat1"] == 0
    assert np.all(soc[hard] >= floor - 1e-6)  # the floor is never crossed where it is reachable
    assert full_activation_violations(p, s) == []


def test_uncertainty_shrinks_the_up_offer(make_site):
    prices = MarketPrices(capacity_up=20.0, capacity_down=0.0)
    sure = solve(offered(make_site, prices, battery={"soc0": 0.6}))
    pv = make_site(n=N, slot_s=SLOT).pv_w
    q = dict(pv_low_w=np.zeros(N), load_high_w=np.full(N, 3000.0))  # cloudy and a busy evening
    unsure = solve(offered(make_site, prices, quantiles=q, battery={"soc0": 0.6}))
    assert unsure.solver.validated and pv.sum() >= 0
    total = lambda s: sum(o.up_w for o in s.offers)  # noqa: E731
    assert total(unsure) < total(sure)
    assert full_activation_violations(offered(make_site, prices, quantiles=q, battery={"soc0": 0.6}), unsure) == []


def test_expected_activation_moves_the_planned_soc(make_site):
    prices = MarketPrices(capacity_up=20.0, capacity_down=0.0)
    s = solve(offered(make_site, prices, ratio=0.5))
    b = s.expected_activation_w["bat1"]
    assert b.max() > 0  # half of every held kW·slot is expected to be discharged
    np.testing.assert_allclose(b, 0.5 * s.offer_up_w - 0.5 * s.offer_down_w)


@pytest.mark.parametrize("prices, match", [
    (MarketPrices(capacity_up=-1.0, capacity_down=0.0), "negative"),
    (MarketPrices(capacity_up=np.ones(47), capacity_down=0.0), "47 prices for 48"),
    (MarketPrices(capacity_up=1.0, capacity_down=1.0, energy_up=-5.0), "energy_up: negative"),
])
def test_bad_prices_raise(make_site, prices, match):
    with pytest.raises(PriceError, match=match):
        solve(offered(make_site, prices))


def test_offer_slot_must_be_a_multiple_of_the_plan_slot(make_site):
    p = offered(make_site, MarketPrices(1.0, 1.0))
    p.offers.slot_s = 1000
    with pytest.raises(PriceError, match="whole multiple"):
        solve(p)


def test_forecast_quantiles_per_slot_history():
    errors = np.array([[-100.0, 0.0], [0.0, 50.0], [100.0, np.nan]])
    lo, mid, hi = forecast_quantiles(errors, [1000.0, 10.0], q=0.0)
    assert lo.tolist() == [900.0, 10.0] and mid.tolist() == [1000.0, 10.0] and hi.tolist() == [1100.0, 60.0]
    lo, mid, hi = forecast_quantiles([], [5.0])
    assert lo == mid == hi == 5.0
