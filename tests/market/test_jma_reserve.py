"""The JMA watch's decision (:func:`vpp.market.jma_reserve.jma_reserve`) on the recorded
documents: in force → storm now; forecast → storm once within the lead, deadline = the
window start; lifted / over / disabled → none; equal decisions have equal keys."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from vpp.config import JmaConfig
from vpp.market.jma import read_warning_doc
from vpp.market.jma_reserve import jma_reserve

DATA = Path(__file__).resolve().parents[1]
JST = timezone(timedelta(hours=9))
LEAD = timedelta(hours=12)
SENDAI = JmaConfig(enabled=True, area_code="0410000")


def doc(name: str) -> dict:
    sub = "optimizer" if "forecast" in name else "market"
    return read_warning_doc(DATA / sub / "data" / name)


def test_warning_in_force_raises_now_and_lifting_reverts():
    now = datetime(2026, 9, 18, 16, 30, tzinfo=JST)
    d = jma_reserve(doc("jma_040000_heavy_rain_issued.json"), SENDAI, now, LEAD)
    assert d.raise_ and d.deadline == now and "大雨警報 (03)" in d.reason and "暴風" not in d.reason
    later = jma_reserve(doc("jma_040000_heavy_rain_issued.json"), SENDAI, now + timedelta(minutes=5), LEAD)
    assert later.key == d.key  # the same warning polled again is no change
    off = jma_reserve(doc("jma_040000_heavy_rain_lifted.json"), SENDAI, now + timedelta(hours=13), LEAD)
    assert not off.raise_ and off.deadline is None and off.key != d.key
    # 気仙沼市 keeps its 暴風警報 (05) in the lifted document
    kesen = jma_reserve(doc("jma_040000_heavy_rain_lifted.json"), JmaConfig(enabled=True, area_code="0420500"),
                        now, LEAD)
    assert kesen.raise_ and "暴風警報 (05)" in kesen.reason
    assert not jma_reserve(doc("jma_040000_heavy_rain_issued.json"), JmaConfig(enabled=False, area_code="0410000"),
                           now, LEAD).raise_


def test_forecast_warning_raises_within_the_lead_with_the_window_start_as_deadline():
    fc = doc("jma_0410000_heavy_rain_forecast.json")  # 大雨警報 forecast 22nd 15:00–21:00 JST
    start = datetime(2026, 6, 22, 15, 0, tzinfo=JST)
    assert not jma_reserve(fc, SENDAI, start - LEAD - timedelta(minutes=1), LEAD).raise_
    d = jma_reserve(fc, SENDAI, start - LEAD + timedelta(hours=1), LEAD)
    assert d.raise_ and d.deadline == start and "forecast" in d.reason
    assert jma_reserve(fc, SENDAI, start + timedelta(hours=1), LEAD).deadline == start + timedelta(hours=1)
    assert not jma_reserve(fc, SENDAI, datetime(2026, 6, 22, 21, 0, tzinfo=JST), LEAD).raise_  # over
