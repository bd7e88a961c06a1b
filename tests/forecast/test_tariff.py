from datetime import time

import pandas as pd
import pytest

from vpp.config import Tariff, TouPeriod
from vpp.forecast.tariff import expand_tariff

TOU = Tariff(sell_per_kwh=8.5, co2_kg_per_kwh=0.45, co2_price_per_kg=2.0, periods=[
    TouPeriod(name="night", start=time(22), end=time(8), buy_per_kwh=24.0),
    TouPeriod(name="winter-peak", start=time(16), end=time(18), buy_per_kwh=45.0, months=[12, 1, 2]),
    TouPeriod(name="peak", start=time(10), end=time(17), buy_per_kwh=40.0),
    TouPeriod(name="day", start=time(8), end=time(22), buy_per_kwh=32.0),
])


def at(local: str):
    return pd.DatetimeIndex([pd.Timestamp(local, tz="Asia/Tokyo").tz_convert("UTC")])


@pytest.mark.parametrize("local,price,name", [
    ("2026-06-01 23:30", 24.0, "night"),
    ("2026-06-02 03:00", 24.0, "night"),
    ("2026-06-02 07:45", 24.0, "night"),
    ("2026-06-02 08:00", 32.0, "day"),
    ("2026-06-02 12:00", 40.0, "peak"),
    ("2026-06-02 16:30", 40.0, "peak"),
    ("2026-12-02 16:30", 45.0, "winter-peak"),
    ("2026-12-02 17:30", 45.0, "winter-peak"),
    ("2026-06-02 17:30", 32.0, "day"),
])
def test_periods_local_time_wrap_and_months(local, price, name):
    out = expand_tariff(TOU, at(local), "Asia/Tokyo")
    assert out["buy_per_kwh"].iloc[0] == price
    assert out["period"].iloc[0] == name


def test_horizon_columns():
    idx = pd.date_range("2026-06-01T15:00Z", periods=96, freq="30min")  # 00:00 JST, 48 h
    out = expand_tariff(TOU, idx, "Asia/Tokyo")
    assert out.index.equals(idx)
    assert (out["sell_per_kwh"] == 8.5).all() and (out["co2_kg_per_kwh"] == 0.45).all()
    assert out["co2_cost_per_kwh"].tolist() == pytest.approx([0.9] * 96)
    # per local day: 10 h night (20 slots), 7 h peak, 7 h day
    assert (out["period"] == "night").sum() == 40
    assert (out["period"] == "peak").sum() == 28


def test_uncovered_slot_is_an_error():
    gap = Tariff(periods=[TouPeriod(name="day", start=time(8), end=time(22), buy_per_kwh=30)])
    with pytest.raises(ValueError, match="22:00"):
        expand_tariff(gap, pd.date_range(pd.Timestamp("2026-06-01 21:00", tz="Asia/Tokyo"), periods=4, freq="30min"))
