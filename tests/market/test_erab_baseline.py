"""Golden tests for the ERAB baselines; every expected number is worked out in the comments."""
from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from vpp.market.baseline import (
    ALGORITHM_VERSION,
    BaselineError,
    SameDayAdjustment,
    high_x_of_y,
    is_holiday_type,
    plan_baseline,
)

TZ = "Asia/Tokyo"


def history(days: dict[date, tuple[float, float]], default: float = 50.0,
            first=date(2026, 10, 1), last=date(2026, 11, 25)) -> pd.Series:
    """Every local slot = ``default``; the 14:00 and 14:30 JST slots of ``days`` overridden."""
    idx = pd.date_range(pd.Timestamp(first, tz=TZ), pd.Timestamp(last + timedelta(days=1), tz=TZ),
                        freq="30min", inclusive="left")
    s = pd.Series(default, index=idx)
    for d, (a, b) in days.items():
        if not first <= d <= last:
            continue
        s[pd.Timestamp(f"{d} 14:00", tz=TZ)] = a
        s[pd.Timestamp(f"{d} 14:30", tz=TZ)] = b
    return s.tz_convert("UTC")


def event(d: str):
    return pd.Timestamp(f"{d} 14:00", tz=TZ), pd.Timestamp(f"{d} 15:00", tz=TZ)


# Weekday event Wed 2026-11-25, 14:00-15:00 JST. Going back: Tue 24, [Mon 23 勤労感謝の日],
# [Sun 22, Sat 21], Fri 20, [Thu 19 = earlier event], Wed 18, Tue 17, Mon 16, Fri 13 ...
WEEKDAY = {
    date(2026, 11, 24): (100, 110),  # mean 105
    date(2026, 11, 23): (500, 500),  # holiday: must not count
    date(2026, 11, 20): (90, 100),   # mean 95
    date(2026, 11, 19): (400, 400),  # event day: must not count
    date(2026, 11, 18): (4, 6),      # mean 5: low day
    date(2026, 11, 17): (120, 130),  # mean 125
    date(2026, 11, 16): (60, 70),    # mean 65
    date(2026, 11, 13): (80, 80),    # mean 80
}


def test_high_4_of_5_skips_holidays_event_days_and_low_days():
    # First pick 24,20,18,17,16: mean of means (105+95+5+125+65)/5 = 79, 25 % = 19.75 > 5,
    # so the 18th is dropped and the 13th joins: 24,20,17,16,13 (mean 94, no low day).
    # Highest four: 17 (125), 24 (105), 20 (95), 13 (80).
    # slot 14:00 = (120+100+90+80)/4 = 97.5; slot 14:30 = (130+110+100+80)/4 = 105.
    start, end = event("2026-11-25")
    r = high_x_of_y(history(WEEKDAY), start, end, tz=TZ, event_days=[date(2026, 11, 19)])
    assert r.method == "high4of5"
    assert r.algorithm_version == ALGORITHM_VERSION
    assert r.skipped_low == (date(2026, 11, 18),)
    assert r.candidates == (date(2026, 11, 24), date(2026, 11, 20), date(2026, 11, 17),
                            date(2026, 11, 16), date(2026, 11, 13))
    assert r.days == (date(2026, 11, 24), date(2026, 11, 20), date(2026, 11, 17), date(2026, 11, 13))
    assert list(r.values.index) == [pd.Timestamp("2026-11-25 05:00", tz="UTC"),
                                    pd.Timestamp("2026-11-25 05:30", tz="UTC")]
    assert r.values.tolist() == pytest.approx([97.5, 105.0])
    assert r.adjustment == 0.0


def test_without_event_day_exclusion_the_event_day_would_count():
    # Not excluding the 19th: first pick 24,20,19,18,17 (means 105,95,400,5,125; mean 146,
    # 25 % = 36.5 → 18th dropped) → 24,20,19,17,16 → top four 19,17,24,20:
    # (400+120+100+90)/4 = 177.5, (400+130+110+100)/4 = 185.
    start, end = event("2026-11-25")
    r = high_x_of_y(history(WEEKDAY), start, end, tz=TZ)
    assert r.values.tolist() == pytest.approx([177.5, 185.0])


def test_same_day_adjustment_shifts_by_mean_difference_before_the_event():
    # Adjustment window 10:00-13:00 JST on the 25th: actual 62 in every slot; the chosen days
    # have 50 there, so the baseline there is 50 and the shift is +12.
    h = history(WEEKDAY).tz_convert(TZ)
    h[pd.Timestamp("2026-11-25 10:00", tz=TZ):pd.Timestamp("2026-11-25 12:30", tz=TZ)] = 62.0
    h[pd.Timestamp("2026-11-25 13:00", tz=TZ)] = 1000.0  # inside the last hour: ignored
    start, end = event("2026-11-25")
    r = high_x_of_y(h.tz_convert("UTC"), start, end, tz=TZ, event_days=[date(2026, 11, 19)],
                    adjustment=SameDayAdjustment())
    assert r.adjustment == pytest.approx(12.0)
    assert r.values.tolist() == pytest.approx([109.5, 117.0])


def test_adjustment_window_is_configurable():
    # Window 2 h to 0 h before: 12:00-13:30 JST = 4 slots; actual 12:00/12:30 = 50 (shift 0),
    # 13:00/13:30 = 90 (shift 40) → mean shift 20.
    h = history(WEEKDAY).tz_convert(TZ)
    h[pd.Timestamp("2026-11-25 13:00", tz=TZ)] = 90.0
    h[pd.Timestamp("2026-11-25 13:30", tz=TZ)] = 90.0
    start, end = event("2026-11-25")
    r = high_x_of_y(h.tz_convert("UTC"), start, end, tz=TZ, event_days=[date(2026, 11, 19)],
                    adjustment=SameDayAdjustment(timedelta(hours=2), timedelta(0)))
    assert r.adjustment == pytest.approx(20.0)
    assert r.values.tolist() == pytest.approx([117.5, 125.0])


def test_holiday_event_uses_high_2_of_3_over_weekends_and_holidays():
    # Event on Mon 2026-11-23 (勤労感謝の日): the three most recent holiday-type days are
    # Sun 22 (mean 35), Sat 21 (50), Sun 15 (15) → top two 21 and 22:
    # (50+30)/2 = 40, (50+40)/2 = 45. Weekdays (100+) must not count.
    days = {date(2026, 11, 22): (30, 40), date(2026, 11, 21): (50, 50), date(2026, 11, 15): (20, 10),
            date(2026, 11, 20): (300, 300)}
    start, end = event("2026-11-23")
    r = high_x_of_y(history(days, default=100.0), start, end, tz=TZ)
    assert r.method == "high2of3"
    assert r.candidates == (date(2026, 11, 22), date(2026, 11, 21), date(2026, 11, 15))
    assert r.days == (date(2026, 11, 22), date(2026, 11, 21))
    assert r.values.tolist() == pytest.approx([40.0, 45.0])


def test_weekday_public_holiday_counts_as_a_holiday_day():
    # Event Sun 2026-11-08; candidates Sat 7 (10), Tue 3 文化の日 (75), Sun 1 (30) → top two 3 and 1:
    # (70+30)/2 = 50, (80+30)/2 = 55.
    assert is_holiday_type(date(2026, 11, 3)) and not is_holiday_type(date(2026, 11, 4))
    days = {date(2026, 11, 7): (10, 10), date(2026, 11, 3): (70, 80), date(2026, 11, 1): (30, 30)}
    start, end = event("2026-11-08")
    r = high_x_of_y(history(days, default=100.0), start, end, tz=TZ)
    assert r.candidates == (date(2026, 11, 7), date(2026, 11, 3), date(2026, 11, 1))
    assert r.values.tolist() == pytest.approx([50.0, 55.0])


def test_extra_holidays_change_the_day_type():
    # Declaring Tue 24 a holiday (e.g. site closure) removes it from the weekday pool:
    # candidates 20,17,16,13,12 (12th = default 50) → top four 17,20,13,16:
    # (120+90+80+60)/4 = 87.5, (130+100+80+70)/4 = 95.
    start, end = event("2026-11-25")
    r = high_x_of_y(history(WEEKDAY), start, end, tz=TZ, event_days=[date(2026, 11, 19)],
                    extra_holidays=[date(2026, 11, 24)])
    assert date(2026, 11, 24) not in r.candidates
    assert r.values.tolist() == pytest.approx([87.5, 95.0])


def test_days_with_missing_data_are_not_eligible():
    h = history(WEEKDAY)
    h = h.drop(pd.Timestamp("2026-11-17 14:30", tz=TZ).tz_convert("UTC"))
    start, end = event("2026-11-25")
    r = high_x_of_y(h, start, end, tz=TZ, event_days=[date(2026, 11, 19)])
    assert date(2026, 11, 17) not in r.candidates
    # 24,20,16,13,12 → top four 24 (105), 20 (95), 13 (80), 16 (65):
    # (100+90+80+60)/4 = 82.5, (110+100+80+70)/4 = 90.
    assert r.values.tolist() == pytest.approx([82.5, 90.0])


def test_too_little_history_raises():
    start, end = event("2026-11-25")
    h = history(WEEKDAY, first=date(2026, 11, 17))  # only 24, 20, 18(low), 17 remain
    with pytest.raises(BaselineError, match="High 4 of 5 needs at least 4"):
        high_x_of_y(h, start, end, tz=TZ, event_days=[date(2026, 11, 19)])
    with pytest.raises(BaselineError, match="needs at least"):
        high_x_of_y(history(WEEKDAY), start, end, tz=TZ, lookback_days=3)


@pytest.mark.parametrize("start,end,msg", [
    ("2026-11-25 14:10", "2026-11-25 15:00", "30-min boundary"),
    ("2026-11-25 15:00", "2026-11-25 14:00", "after start"),
])
def test_bad_windows_raise(start, end, msg):
    with pytest.raises(BaselineError, match=msg):
        high_x_of_y(history(WEEKDAY), pd.Timestamp(start, tz=TZ), pd.Timestamp(end, tz=TZ), tz=TZ)


def test_naive_index_is_refused():
    h = history(WEEKDAY).tz_localize(None)
    with pytest.raises(BaselineError, match="tz-aware"):
        high_x_of_y(h, *event("2026-11-25"), tz=TZ)


def test_plan_baseline_returns_the_plan_slice_and_refuses_gaps():
    idx = pd.date_range("2026-11-25 04:00", periods=6, freq="30min", tz="UTC")
    plan = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], index=idx)
    r = plan_baseline(plan, idx[1], idx[4])
    assert r.method == "plan" and r.values.tolist() == [2.0, 3.0, 4.0]
    with pytest.raises(BaselineError, match="lacks 1 slot"):
        plan_baseline(plan.drop(idx[2]), idx[1], idx[4])


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(levels=st.lists(st.floats(min_value=100, max_value=390), min_size=12, max_size=12),
       k=st.floats(min_value=0.01, max_value=100))
def test_baseline_is_bounded_by_the_days_and_scales_linearly(levels, k):
    # max/min < 4 keeps every day above 25 % of any mean, so the low-day rule stays idle here;
    # weekdays Nov 10-25 2026 (12 of them, skipping the 23rd) each get one flat level
    weekdays = [d for d in (date(2026, 11, 25) - timedelta(days=i) for i in range(1, 17))
                if not is_holiday_type(d)][:12]
    days = {d: (v, v) for d, v in zip(weekdays, levels)}
    h = history(days, default=7.0)
    start, end = event("2026-11-25")
    r = high_x_of_y(h, start, end, tz=TZ)
    chosen = [days[d][0] for d in r.days]
    assert len(chosen) == 4 and set(r.candidates) >= set(r.days)
    assert min(chosen) - 1e-9 <= r.values.iloc[0] <= max(chosen) + 1e-9
    assert r.values.iloc[0] == pytest.approx(sum(chosen) / 4)
    # the chosen four are the highest among the candidates
    assert min(chosen) >= max([days[d][0] for d in r.candidates if d not in r.days], default=0)
    assert r.skipped_low == ()
    scaled = high_x_of_y(h * k, start, end, tz=TZ)
    assert scaled.values.to_numpy() == pytest.approx(k * r.values.to_numpy())
