from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from tests.testkit.sites import make_site
from vpp.market.baseline import plan_baseline
from vpp.market.flexibility import BatteryFlexibility
from vpp.market.ledger import IdempotencyConflict, Ledger
from vpp.market.offers import MarketService, SlotAmount
from vpp.market.settlement import settle_award

NOW = datetime(2026, 11, 25, 0, tzinfo=UTC)
T = datetime(2026, 11, 25, 5, tzinfo=UTC)
IDX = pd.date_range(T, periods=2, freq="30min")


@pytest.fixture
def market(tmp_path):
    cfg = make_site("big-battery")
    led = Ledger.open(tmp_path / "l.sqlite", clock=lambda: NOW)
    yield MarketService(led, BatteryFlexibility(cfg, lambda _id: 0.9), lambda: NOW)
    led.close()


def test_settle_award_records_performance_with_versions_and_is_idempotent(market):
    offer = market.submit_offer("op", "o1", [SlotAmount(t, 20_000) for t in IDX]).record
    award = market.award("agg", "a1", offer.id, [SlotAmount(t, 10_000) for t in IDX]).record
    assert award.payload["status"] == "accepted"
    base = plan_baseline(pd.Series([30_000.0, 30_000.0], index=IDX), IDX[0], IDX[-1] + timedelta(minutes=30))
    actual = pd.Series([22_000.0, 18_000.0], index=IDX)
    # delivered 8 kW and 12 kW for 30 min each = 4 + 6 = 10 kWh; instructed 10 kW × 1 h = 10 kWh
    rec, perf = settle_award(market.ledger, award, base, actual, tariff_version="t1", co2_version="c1")
    assert perf.delivered_kwh == pytest.approx(10.0) and perf.compliance_ratio == pytest.approx(1.0)
    assert rec.kind == "performance" and rec.ref == award.id
    assert (rec.algorithm_version, rec.tariff_version, rec.co2_version) == ("erab-high-x-of-y/1", "t1", "c1")
    assert rec.payload["performance"]["delivered_kwh"] == pytest.approx(10.0)
    assert rec.payload["baseline"]["method"] == "plan"

    again, _ = settle_award(market.ledger, award, base, actual, tariff_version="t1", co2_version="c1")
    assert again == rec
    with pytest.raises(IdempotencyConflict):
        settle_award(market.ledger, award, base, actual * 1.1, tariff_version="t1", co2_version="c1")
    assert len(market.ledger.query(kinds=["performance"])) == 1


def test_settle_refuses_mismatched_slots_and_non_awards(market):
    offer = market.submit_offer("op", "o1", [SlotAmount(t, 20_000) for t in IDX]).record
    award = market.award("agg", "a1", offer.id, [SlotAmount(IDX[0], 10_000)]).record
    base = plan_baseline(pd.Series([1.0, 1.0], index=IDX), IDX[0], IDX[-1] + timedelta(minutes=30))
    with pytest.raises(ValueError, match="slots differ"):
        settle_award(market.ledger, award, base, base.values)
    with pytest.raises(ValueError, match="not an award"):
        settle_award(market.ledger, offer, base, base.values)
