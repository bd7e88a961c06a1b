"""Golden tests of :func:`vpp.market.bids.plan_bids` on the community-centre example config
(100 kWh / 50 kW battery, clear-sky forecast, no store): storm mode and JMA warning windows
remove only the slots they affect (from ``reserve.storm_lead_h`` before the window to its
end), other slots stay offered; bad requests are refused with a reason."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from vpp.config import read_config, updated
from vpp.control.reserve import StormMode, base_floor
from vpp.market.bids import BidError, plan_bids, storm_blackout
from vpp.market.jma import read_warning_doc
from vpp.market.prices import day_slots

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "examples" / "community-centre.yaml"
FORECAST = Path(__file__).parent / "data" / "jma_0410000_heavy_rain_forecast.json"
JST = ZoneInfo("Asia/Tokyo")
DAY = date(2026, 6, 22)
NOW = datetime(2026, 6, 21, 11, 30, tzinfo=JST)


@pytest.fixture
def config():
    return updated(read_config(CONFIG), reserve={"storm_lead_h": 3.0},
                   vpp={"jma": {"area_code": "0410000"},  # 仙台市
                        "capacity_price_per_kw": 2.0, "energy_price_per_kwh": 20.0})


def local_hm(s) -> str:
    return s.start.astimezone(JST).strftime("%H:%M")


def bids(config, **kw):
    return plan_bids(config, DAY, now=kw.pop("now", NOW), soc={"bat1": 0.6}, **kw)


def test_storm_removes_slots_from_lead_before_its_deadline(config):
    storm = StormMode(lead=timedelta(hours=3))
    storm.on(NOW, 0.9, datetime(2026, 6, 22, 18, 0, tzinfo=JST).astimezone(timezone.utc), "typhoon 12")
    res = bids(config, storm=storm)
    assert len(res.slots) == 48 and not res.late
    removed = [local_hm(s) for s in res.slots if s.removed]
    assert removed == [f"{h:02d}:{m:02d}" for h in range(15, 24) for m in (0, 30)]  # 18:00 − 3 h lead, open-ended
    assert all(s.up_w == 0 and s.down_w == 0 and s.expected_revenue == 0 and s.reason.startswith("storm mode: floor to 90 %")
               for s in res.removed)
    before = [s for s in res.slots if not s.removed]
    assert sum(s.up_w + s.down_w for s in before) > 0 and not any("storm" in s.reason for s in before)
    assert res.storm.startswith("storm mode: floor to 90 % by 2026-06-22T18:00+09:00") and "typhoon" not in res.storm
    assert res.expected_revenue > 0


def test_jma_warning_window_removes_only_its_slots(config):
    res = bids(config, jma_doc=read_warning_doc(FORECAST))
    removed = [local_hm(s) for s in res.slots if s.removed]
    # warning level forecast 15:00–21:00; the floor ramps over the 3 h before
    assert removed == [f"{h:02d}:{m:02d}" for h in range(12, 21) for m in (0, 30)]
    assert all("大雨警報 (03) forecast" in s.reason and s.up_w == s.down_w == 0 for s in res.removed)
    morning = [s for s in res.slots if local_hm(s) < "12:00"]
    night = [s for s in res.slots if local_hm(s) >= "21:00"]
    assert sum(s.up_w + s.down_w for s in morning) > 0
    assert sum(s.up_w + s.down_w for s in night) > 0  # back to the base floor after the window
    assert not any(s.removed or "JMA" in s.reason for s in morning + night)
    # the plan's floor: base until 12:00, the storm target (90 %) through the window, base after
    sc = res.schedule
    floor = {(sc.start + timedelta(seconds=sc.slot_s * k)).astimezone(JST).strftime("%d %H:%M"): f
             for k, f in enumerate(sc.floor["bat1"])}
    base = base_floor(config.reserve, config.devices_of("battery")[0].ratings)  # 400 W × 72 h: 36.8 %
    assert floor["22 11:00"] == pytest.approx(base) and floor["22 23:00"] == pytest.approx(base)
    assert floor["22 15:00"] == pytest.approx(0.9) and floor["22 20:45"] == pytest.approx(0.9)
    assert base < floor["22 13:30"] < 0.9


def test_jma_open_ended_warning_elsewhere_in_the_office_area_removes_the_rest(config):
    config = updated(config, vpp={"jma": {"area_code": "040000"}})  # the whole office: 気仙沼市's 暴風警報 has no end time
    res = bids(config, jma_doc=read_warning_doc(FORECAST))
    assert all(s.removed for s in res.slots)
    assert any("暴風警報 (05) in force" in s.reason for s in res.slots)
    assert res.expected_revenue == 0


def test_no_storm_no_removal_and_totals(config):
    res = bids(config)
    assert not res.removed and res.storm is None
    assert res.expected_revenue == pytest.approx(sum(s.expected_revenue for s in res.slots))
    assert 0 < res.revenue_at_risk < res.expected_revenue


@pytest.mark.parametrize("day, now, match", [
    (date(2026, 6, 20), NOW, "in the past"),
    (date(2026, 6, 23), NOW, "too far ahead"),
])
def test_bad_days_refused(config, day, now, match):
    with pytest.raises(BidError, match=match) as e:
        plan_bids(config, day, now=now, soc={})
    assert e.value.status == 422


def test_prices_for_the_wrong_day_refused(config):
    wrong = pd.DataFrame({"capacity_up": [2.0], "capacity_down": [1.0], "energy_up": [0.0], "energy_down": [0.0],
                          "spot": [float("nan")]}, index=day_slots(date(2026, 6, 23))[:1])
    with pytest.raises(BidError, match="wrong day") as e:
        bids(config, prices=wrong)
    assert e.value.status == 422


def test_today_after_the_deadline_marks_started_slots(config):
    now = datetime(2026, 6, 22, 10, 10, tzinfo=JST)
    res = plan_bids(config, DAY, now=now, soc={"bat1": 0.6})
    assert res.late
    started = [local_hm(s) for s in res.slots if s.reason == "slot already started"]
    assert started == [f"{h:02d}:{m:02d}" for h in range(10) for m in (0, 30)] + ["10:00"]
    assert all(s.removed and s.up_w == s.down_w == 0 for s in res.slots[:21])
    assert sum(s.up_w + s.down_w for s in res.slots[21:]) > 0


def test_the_storm_reason_is_named_only_when_public():
    """An operator's reason is free text and bids go to aggregators; the JMA watch's reason
    (public warning text) may be named."""
    storm = StormMode(lead=timedelta(hours=3))
    storm.on(NOW, 0.9, datetime(2026, 6, 22, 18, 0, tzinfo=JST).astimezone(timezone.utc), "JMA 大雨警報 (03)")
    assert storm_blackout(storm, timedelta(hours=3), "Asia/Tokyo").reason == \
        "storm mode: floor to 90 % by 2026-06-22T18:00+09:00"
    assert storm_blackout(storm, timedelta(hours=3), "Asia/Tokyo", reason_public=True).reason == \
        "storm mode (JMA 大雨警報 (03)): floor to 90 % by 2026-06-22T18:00+09:00"
