"""Aggregator price CSV parsing (``vpp.market.prices``): good files, bad files, alignment."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest

from optimizer import PriceError
from vpp.config import VppSection
from vpp.market.prices import (
    day_slots,
    default_prices,
    parse_price_csv,
    prices_for_day,
    read_price_csv,
    to_market_prices,
)

DAY = date(2026, 6, 22)
HEAD = "slot_start,capacity_up,capacity_down,energy_up,energy_down,spot\n"


def day_csv(cap=2.0, n=48) -> str:
    rows = [f"{t.tz_convert('Asia/Tokyo').isoformat()},{cap},1.0,25.0,0.0,11.0" for t in day_slots(DAY)[:n]]
    return HEAD + "\n".join(rows) + "\n"


def test_parse_day_in_utc_and_local_forms(tmp_path):
    df = parse_price_csv(day_csv())
    assert len(df) == 48 and df.index[0] == datetime(2026, 6, 21, 15, tzinfo=UTC)
    assert df["capacity_up"].eq(2.0).all() and df["spot"].eq(11.0).all()
    naive = HEAD + "2026-06-22 00:30,3,,,,\n"  # naive = site time; empty cells = no price
    d2 = parse_price_csv(naive)
    assert d2.index[0] == datetime(2026, 6, 21, 15, 30, tzinfo=UTC)
    assert np.isnan(d2["capacity_down"].iloc[0])
    p = tmp_path / "p.csv"
    p.write_text(day_csv(), encoding="utf-8")
    assert read_price_csv(p).equals(df)


@pytest.mark.parametrize("text, match", [
    (HEAD + "2026-06-22T00:00:00+09:00,-1,1,1,1,1\n", "capacity_up: negative"),
    (HEAD + "2026-06-22T00:00:00+09:00,1,1,-3,1,1\n", "energy_up: negative"),
    (HEAD + "2026-06-22T00:10:00+09:00,1,1,1,1,1\n", "30-min boundary"),
    (HEAD + "2026-06-22T00:00:00+09:00,1,1,1,1,1\n2026-06-22T00:00:00+09:00,1,1,1,1,1\n", "duplicate"),
    (HEAD + "2026-06-22T00:00:00+09:00,abc,1,1,1,1\n", "non-numeric"),
    ("slot_start,price\n2026-06-22T00:00:00+09:00,1\n", "columns"),
    (HEAD + "yesterday,1,1,1,1,1\n", "slot_start"),
])
def test_bad_price_files_raise(text, match):
    with pytest.raises(PriceError, match=match):
        parse_price_csv(text)


def test_wrong_day_raises_and_missing_slots_are_no_price():
    df = parse_price_csv(day_csv(n=40))
    with pytest.raises(PriceError, match="wrong day"):
        prices_for_day(df, date(2026, 6, 23))
    d = prices_for_day(df, DAY)
    assert len(d) == 48 and d["capacity_up"].iloc[:40].eq(2.0).all() and d["capacity_up"].iloc[40:].isna().all()


def test_defaults_from_config_and_alignment():
    d = default_prices(VppSection(capacity_price_per_kw=1.5, energy_price_per_kwh=20.0), DAY)
    assert d["capacity_up"].eq(1.5).all() and d["capacity_down"].eq(1.5).all() and d["energy_up"].eq(20.0).all()
    mp = to_market_prices(d, datetime(2026, 6, 21, 14, tzinfo=UTC), 6)  # two slots before the day
    assert np.isnan(mp.capacity_up[:2]).all() and (mp.capacity_up[2:] == 1.5).all()
    with pytest.raises(PriceError, match="boundary"):
        to_market_prices(d, datetime(2026, 6, 21, 14, 15, tzinfo=UTC), 4)
