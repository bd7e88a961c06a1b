"""EPRX products as data: every row validates offers (gate, step, unit, lot); pooling to the lot."""
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from vpp.market.products import ProductError, aggregate, catalogue, check_offer, load_catalogue

JST = ZoneInfo("Asia/Tokyo")
NAMES = ["一次", "二次①", "二次②", "三次①", "三次②"]
#: (response [s], simplified lot [kW] or None, dedicated-line lot [kW], コマ trading since)
ROWS = {"一次": (10, None, 5000, date(2026, 4, 1)), "二次①": (300, None, 5000, date(2026, 4, 1)),
        "二次②": (300, None, 5000, date(2026, 4, 1)), "三次①": (900, 1000, 5000, date(2026, 4, 1)),
        "三次②": (3600, 1000, 5000, date(2025, 4, 1))}


def slots(day: date, hour: int, kws: list[float]) -> list[tuple[datetime, float]]:
    t0 = datetime(day.year, day.month, day.day, hour, tzinfo=JST)
    return [(t0 + timedelta(minutes=30 * i), kw) for i, kw in enumerate(kws)]


DAY = date(2026, 12, 8)
BEFORE_GATE = datetime(2026, 12, 7, 13, 59, tzinfo=JST)


def test_the_table_has_one_row_per_product_with_its_facts():
    cat = catalogue()
    assert [p.name for p in cat.products] == NAMES
    for p in cat.products:
        response, simple, dedicated, coma = ROWS[p.name]
        assert p.response_s == response and p.coma_since == coma and p.step_kw == 1
        assert p.min_lot_kw.get("simplified") == simple and p.min_lot_kw["dedicated_line"] == dedicated
        assert p.unit_s(coma) == 1800 and p.unit_s(coma - timedelta(days=1)) == 10800
        assert p.gate(DAY, "Asia/Tokyo") == datetime(2026, 12, 7, 14, tzinfo=JST)
        assert p.metering and p.assessment
        assert cat.get(p.code) is p


@pytest.mark.parametrize("name", NAMES)
def test_each_product_row_validates_offers(name):
    p = catalogue().get(name)
    lot, mode = p.lot_kw()
    assert mode == ("simplified" if ROWS[name][1] else "dedicated_line")
    check_offer(p, slots(DAY, 17, [lot, lot + 1, 0]), BEFORE_GATE, pooled=False)  # ok
    with pytest.raises(ProductError, match=f"below the minimum lot {lot:g} kW") as e:
        check_offer(p, slots(DAY, 17, [lot - 1]), BEFORE_GATE, pooled=False)
    assert e.value.code == "below_lot" and e.value.field == "slots.capacity_kw"
    check_offer(p, slots(DAY, 17, [lot - 1]), BEFORE_GATE, pooled=True)  # the pool meets the lot
    with pytest.raises(ProductError, match="not a multiple of the 1 kW step") as e:
        check_offer(p, slots(DAY, 17, [lot + 0.5]), BEFORE_GATE, pooled=False)
    with pytest.raises(ProductError, match="gate closure for 2026-12-08 was 2026-12-07T14:00:00\\+09:00") as e:
        check_offer(p, slots(DAY, 17, [lot]), BEFORE_GATE + timedelta(minutes=1), pooled=False)
    assert e.value.code == "gate_closed"
    # before コマ trading: whole 3-h blocks with one kW
    old = ROWS[name][3] - timedelta(days=7)
    gate = datetime.combine(old - timedelta(days=2), datetime.min.time(), tzinfo=JST)
    check_offer(p, slots(old, 3, [lot] * 6), gate, pooled=False)
    with pytest.raises(ProductError, match="3 h blocks") as e:
        check_offer(p, slots(old, 3, [lot] * 5 + [lot + 1]), gate, pooled=False)
    assert e.value.code == "block_unit"
    with pytest.raises(ProductError, match="3 h blocks"):
        check_offer(p, slots(old, 4, [lot] * 6), gate, pooled=False)  # not aligned to the block


def test_dedicated_line_lot_and_products_without_simplified_dispatch():
    p = catalogue().get("三次①")
    with pytest.raises(ProductError, match="below the minimum lot 5000 kW \\(dedicated_line\\)"):
        check_offer(p, slots(DAY, 17, [1000]), BEFORE_GATE, pooled=False, dispatch="dedicated_line")
    with pytest.raises(ProductError, match="no simplified dispatch") as e:
        catalogue().get("一次").lot_kw("simplified")
    assert e.value.code == "no_such_dispatch"
    with pytest.raises(ProductError, match="unknown product 'tertiary9'"):
        catalogue().get("tertiary9")


def test_pooling_homes_reaches_the_lot_and_drops_slots_that_cannot():
    p = catalogue().get("三次②")
    t = [s for s, _ in slots(DAY, 17, [0, 0, 0])]
    homes = {f"home{i}": {t[0]: 4.0, t[1]: 2.5, t[2]: 0.0} for i in range(300)}
    out = aggregate(p, homes)
    assert [s.kw for s in out] == [1200.0, 0.0, 0.0]
    assert out[1].pooled_kw == pytest.approx(750.0)
    assert out[1].reason == "below the minimum lot: 750 kW pooled from 300 resource(s) < 1000 kW (simplified)"
    assert out[2].reason == "nothing to offer"
    # steps: a pooled 1000.7 kW is offered as 1000 kW
    assert aggregate(p, {"a": {t[0]: 600.4}, "b": {t[0]: 400.3}})[0].kw == 1000.0


def test_pooling_before_koma_trading_offers_the_block_minimum():
    p = catalogue().get("三次①")
    old = date(2026, 3, 20)
    s = slots(old, 3, [1200, 1500, 1100, 1300, 1400, 1250])
    out = aggregate(p, {"town": dict(s)})
    assert {x.kw for x in out} == {1100.0}
    out = aggregate(p, {"town": dict(s[:5])})  # an incomplete block is not offered
    assert {x.kw for x in out} == {0.0} and out[0].reason == "incomplete trading block"


def test_a_broken_table_names_the_row_field(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("timezone: Asia/Tokyo\nproducts:\n  - {name: x, code: x, response_s: -1}\n")
    with pytest.raises(ValueError, match="products.0.response_s"):
        load_catalogue(f)


def test_now_is_utc_or_local_alike():
    p = catalogue().get("三次②")
    check_offer(p, slots(DAY, 17, [1000]), BEFORE_GATE.astimezone(timezone.utc), pooled=False)
