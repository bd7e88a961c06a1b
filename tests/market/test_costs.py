"""Cost, CO2 and VPP revenue arithmetic checked by hand on small series, plus the summary over
a real embedded store and ledger."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from tests.testkit.sites import make_site
from vpp.market.costs import (
    account,
    compare,
    cost_summary,
    period_window,
    settled_slots,
    vpp_revenue,
)
from vpp.market.ledger import Ledger


def test_account_by_hand():
    # 4 slots: import 10 kWh @ 40, import 5 @ 24, export 4 @ sell 8.5, import 1 @ 32 (NaN = unmetered)
    imp = np.array([10.0, 5.0, 0.0, 1.0, np.nan])
    exp = np.array([0.0, 0.0, 4.0, 0.0, np.nan])
    buy = np.array([40.0, 24.0, 32.0, 32.0, 32.0])
    a = account(imp, exp, buy, 8.5, 0.45)
    assert a.bought_kwh == 16.0 and a.sold_kwh == 4.0
    # 400 + 120 − 34 + 32 = 518 yen
    assert a.cost == pytest.approx(518.0)
    # 16 kWh × 0.45 kg/kWh = 7.2 kg
    assert a.co2_kg == pytest.approx(7.2)


def test_import_and_export_of_one_slot_are_not_netted():
    # one slot imported 3 kWh @ 40 and exported 2 kWh @ 10: 120 − 20 = 100 yen, 3 × 0.5 = 1.5 kg;
    # netted it would have been 1 kWh bought, 40 yen, 0.5 kg
    a = account(np.array([3.0]), np.array([2.0]), 40.0, 10.0, 0.5)
    assert (a.bought_kwh, a.sold_kwh) == (3.0, 2.0)
    assert a.cost == pytest.approx(100.0) and a.co2_kg == pytest.approx(1.5)


def test_no_battery_counterfactual_by_hand():
    # the battery discharged 6 kWh in the peak slot and charged 4 kWh from PV in the export slot
    imp, exp = np.array([10.0, 5.0, 0.0, 1.0]), np.array([0.0, 0.0, 4.0, 0.0])
    bat = np.array([6.0, 0.0, -4.0, np.nan])
    c = compare(imp, exp, bat, np.array([40.0, 24.0, 32.0, 32.0]), 8.5, 0.45)
    # without: 16×40 + 5×24 − 8×8.5 + 1×32 = 640 + 120 − 68 + 32 = 724 yen; with: 518
    assert c.no_battery.cost == pytest.approx(724.0)
    assert c.savings == pytest.approx(206.0)
    # bought 22 kWh without vs 16 with: 6 kWh × 0.45 = 2.7 kg avoided
    assert c.no_battery.bought_kwh == 22.0 and c.no_battery.sold_kwh == 8.0
    assert c.co2_avoided_kg == pytest.approx(2.7)


def test_no_battery_counterfactual_of_a_mixed_slot():
    # a slot with 3 kWh import and 2 kWh export in which the battery discharged 4 kWh: without it
    # export would have been 0 and import 3 + (4 − 2) = 5 kWh
    c = compare(np.array([3.0]), np.array([2.0]), np.array([4.0]), 40.0, 10.0, 0.5)
    assert (c.no_battery.bought_kwh, c.no_battery.sold_kwh) == (5.0, 0.0)
    assert c.no_battery.cost == pytest.approx(200.0) and c.savings == pytest.approx(100.0)


def test_battery_losses_show_as_negative_savings():
    # charged 10 kWh at the night price, gave back 9 kWh at the same price: 1 kWh lost
    c = compare(np.array([20.0, 1.0]), np.zeros(2), np.array([-10.0, 9.0]), 24.0, 8.5, 0.5)
    assert c.savings == pytest.approx(-24.0) and c.co2_avoided_kg == pytest.approx(-0.5)


def test_vpp_revenue_by_hand():
    # 2 awarded slots at 10 kW and 6 kW, 3 yen/kW per slot; delivered 4 and 6 kWh at 20 yen
    # plus one slot that delivered −1 kWh (not paid, not charged)
    r = vpp_revenue(np.array([10.0, 6.0]), 3.0, np.array([4.0, 6.0, -1.0]), 20.0)
    assert r.capacity == pytest.approx(48.0) and r.energy == pytest.approx(200.0) and r.total == pytest.approx(248.0)
    assert r.delivered_kwh == pytest.approx(10.0) and r.awarded_kwh == pytest.approx(8.0)
    per_slot = vpp_revenue(np.zeros(0), 0.0, np.array([4.0, 6.0]), np.array([10.0, 30.0]))
    assert per_slot.energy == pytest.approx(220.0)


def test_settled_slots_latest_record_of_a_slot_wins():
    def perf(award, *rows):
        return {"award_id": award, "performance": {"slots": [{"start": s, "delivered_kwh": k} for s, k in rows]}}

    recs = [perf("a1", ("2026-11-25T05:00:00+00:00", 1.0), ("2026-11-25T05:30:00+00:00", 2.0)),
            perf("a1", ("2026-11-25T05:30:00Z", 3.0)),                  # later re-read of one slot
            perf("a2", ("2026-11-25T05:30:00+00:00", None))]
    df = settled_slots(recs)
    assert sorted(zip(df["award_id"], df["delivered_kwh"])) == [("a1", 1.0), ("a1", 3.0), ("a2", 0.0)]


def test_period_window_is_local():
    now = datetime(2026, 12, 1, 3, 10, tzinfo=UTC)  # 12:10 in Tokyo
    a, e = period_window("today", now, "Asia/Tokyo")
    assert a == pd.Timestamp("2026-11-30T15:00:00Z") and e == pd.Timestamp("2026-12-01T03:30:00Z")
    a, _ = period_window("month", datetime(2026, 11, 20, 3, tzinfo=UTC), "Asia/Tokyo")
    assert a == pd.Timestamp("2026-10-31T15:00:00Z")
    with pytest.raises(ValueError):
        period_window("year", now, "Asia/Tokyo")  # type: ignore[arg-type]


def test_cost_summary_from_store_and_ledger(tmp_path):
    from vpp.storage.embedded import EmbeddedStore

    cfg = make_site("metered-battery", storage={"backend": "embedded", "path": str(tmp_path / "s.sqlite")})
    store = EmbeddedStore(cfg.storage, site="s")
    store.open()
    # 07:00–09:00 Tokyo (22:00–24:00 UTC the day before): meter 10 kW import, battery 4 kW discharge,
    # sampled every 10 s: 2 night slots @ 20 and 2 day slots @ 40 yen
    t0 = int(pd.Timestamp("2026-11-30T22:00:00Z").timestamp())
    rows = []
    for dev, kind, p in (("m1", "meter", 10_000.0), ("b1", "battery", 4_000.0)):
        rows += [("s", dev, kind, (t0 + k) * 10**9, "good", "", json.dumps({"power_w": p}))
                 for k in range(0, 7201, 10)]
    store.write_prepared(rows)
    led = Ledger.open(tmp_path / "l.sqlite", clock=lambda: datetime(2026, 12, 1, 0, tzinfo=UTC))
    offer, _ = led.record("offer", "agg", {"price_per_kwh": 30.0, "slots": []})
    award, _ = led.record("award", "agg", {"offer_id": offer.id, "slots": [
        {"start": "2026-11-30T23:00:00Z", "accepted_w": 5000.0}, {"start": "2026-11-30T23:30:00Z", "accepted_w": 5000.0}]})
    led.record("performance", "settlement", {"award_id": award.id, "performance": {"slots": [
        {"start": "2026-11-30T23:00:00+00:00", "delivered_kwh": 2.0},
        {"start": "2026-11-30T23:30:00+00:00", "delivered_kwh": 2.5}]}})
    try:
        s = cost_summary(store, cfg, led, "today", datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    finally:
        store.close()
        led.close()
    assert s["slots"] == 18 and s["metered_slots"] == 4  # 00:00–09:00 Tokyo
    a, nb = s["actual"], s["no_battery"]
    assert a["bought_kwh"] == pytest.approx(20.0) and a["sold_kwh"] == 0.0
    # 2 × 5 kWh × 20 + 2 × 5 kWh × 40 = 600 yen with; 14 kW → 2 × 7 × 20 + 2 × 7 × 40 = 840 without
    assert a["cost"] == pytest.approx(600.0) and nb["cost"] == pytest.approx(840.0)
    assert s["savings"] == pytest.approx(240.0)
    assert s["co2_avoided_kg"] == pytest.approx(8.0 * 0.5)
    assert s["battery_discharged_kwh"] == pytest.approx(8.0)
    # capacity 2 × 5 kW × 2 yen = 20; energy 4.5 kWh × the offer's 30 yen = 135
    assert s["vpp"]["capacity"] == pytest.approx(20.0) and s["vpp"]["energy"] == pytest.approx(135.0)
    assert s["vpp"]["total"] == pytest.approx(155.0)


def test_month_reads_past_days_once_and_not_gappy_ones(tmp_path):
    from vpp.storage.embedded import EmbeddedStore

    cfg = make_site("metered-battery", storage={"backend": "embedded", "path": str(tmp_path / "s.sqlite")})
    store = EmbeddedStore(cfg.storage, site="s")
    store.open()
    # Dec 1, 2 and 3 so far (Tokyo) metered every 60 s at 2 kW import, Dec 2 with a 2-h hole
    day0 = int(pd.Timestamp("2026-11-30T15:00:00Z").timestamp())
    now = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)  # 12:00 on Dec 3 in Tokyo
    ts = [t for t in range(day0, int(now.timestamp()) + 1, 60) if not day0 + 86400 + 3600 <= t < day0 + 86400 + 3 * 3600]
    store.write_prepared([("s", "m1", "meter", t * 10**9, "good", "", json.dumps({"power_w": 2000.0})) for t in ts])
    cache: dict = {}
    try:
        s1 = cost_summary(store, cfg, None, "month", now, cache=cache)
        assert len(cache) == 1  # Dec 1 only: Dec 2 has a hole (a spool may still fill it), Dec 3 runs
        s2 = cost_summary(store, cfg, None, "month", now, cache=cache)
    finally:
        store.close()
    assert s1 == s2
    # 2 full days + 12 h with a 2 h hole (counted as missing slots, no energy): 58 h × 2 kW = 116 kWh
    assert s1["slots"] == 120 and s1["metered_slots"] == 116
    assert s1["actual"]["bought_kwh"] == pytest.approx(116.0, abs=0.2)


def test_cost_summary_meters_import_and_export_of_a_slot_separately(tmp_path):
    from vpp.storage.embedded import EmbeddedStore

    cfg = make_site("metered-battery", storage={"backend": "embedded", "path": str(tmp_path / "s.sqlite")})
    store = EmbeddedStore(cfg.storage, site="s")
    store.open()
    # 08:00–08:30 Tokyo (day price 40, sell 10): 12 kW import for 15 min, then 8 kW export for 15 min
    t0 = int(pd.Timestamp("2026-11-30T23:00:00Z").timestamp())
    store.write_prepared([("s", "m1", "meter", (t0 + k) * 10**9, "good", "",
                           json.dumps({"power_w": 12_000.0 if k < 900 else -8_000.0})) for k in range(0, 1800, 10)])
    try:
        s = cost_summary(store, cfg, None, "today", datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    finally:
        store.close()
    a = s["actual"]
    # ≈ 3 kWh bought and 2 kWh sold (the 10-s sign change is interpolated: ±0.02 kWh);
    # netted it would be 1 kWh bought and 0 sold, 40 yen
    assert a["bought_kwh"] == pytest.approx(3.0, abs=0.03) and a["sold_kwh"] == pytest.approx(2.0, abs=0.03)
    assert a["cost"] == pytest.approx(3.0 * 40 - 2.0 * 10, abs=1.5)
    assert a["co2_kg"] == pytest.approx(1.5, abs=0.02)
    assert s["metered_slots"] == 1 and s["no_battery"] == a and s["savings"] == 0.0
