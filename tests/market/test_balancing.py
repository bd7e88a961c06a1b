"""計画値同時同量: the 48-コマ plan from the schedule, revisions until gate closure, frozen
after (edits refused and recorded), imbalance at the imbalance price of a fixture day."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from vpp.forecast.prices import read_imbalance_csv
from vpp.market.balancing import (BalancingPlans, PlanError, PlanFrozen, imbalance, imbalance_kpis, koma_starts,
                                  plan_file, plan_from_schedule)
from vpp.market.ledger import Ledger

TZ = "Asia/Tokyo"
DAY = date(2026, 6, 1)
DATA = Path(__file__).parents[1] / "data" / "prices"


@pytest.fixture
def ledger(tmp_path):
    led = Ledger.open(tmp_path / "l.sqlite", clock=lambda: datetime(2026, 6, 1, tzinfo=timezone.utc))
    yield led
    led.close()


def test_plan_from_a_15_minute_schedule():
    start = koma_starts(DAY, TZ)[0] - timedelta(minutes=30)  # from 23:30 the day before
    n = 2 + 48 * 2 - 1  # ends 15 min short of midnight
    imp = np.full(n, 4000.0)
    exp = np.zeros(n)
    exp[2:4] = 2000.0  # コマ 1: 0.5 kWh supply
    rows = plan_from_schedule(imp, exp, start, 900, DAY, TZ)
    assert sorted(rows) == list(range(1, 48))  # コマ 48 needs two more slots than the schedule has
    assert rows[1] == pytest.approx((2.0, 1.0)) and rows[2] == pytest.approx((2.0, 0.0))


def test_revisions_until_gate_closure_then_frozen(ledger):
    plans = BalancingPlans(ledger, "bg-izumi", TZ)
    starts = koma_starts(DAY, TZ)
    first = {k: (10.0, 0.0) for k in range(1, 49)}
    rec, changed = plans.submit("planner", DAY, first, starts[0] - timedelta(hours=3), strict=False, reason="schedule")
    assert changed == list(range(1, 49)) and rec.payload["revision"] == 1
    # at 09:10 JST コマ 1..21 (gate = start − 1 h ≤ 09:10, i.e. up to the 10:00 コマ) are frozen
    now = starts[20] - timedelta(minutes=50)
    cur = plans.current(DAY, now)
    assert cur["frozen"].sum() == 21 and not cur.at[22, "frozen"]
    # the schedule moved: the automatic revision changes the open コマ only
    _, changed = plans.submit("planner", DAY, {k: (12.0, 1.0) for k in range(1, 49)}, now, strict=False)
    assert changed == list(range(22, 49))
    cur = plans.current(DAY, now)
    assert cur.at[21, "demand_kwh"] == 10.0 and cur.at[22, "demand_kwh"] == 12.0 and cur.at[22, "revision"] == 2
    # an operator's edit of a frozen コマ is refused as a whole and recorded
    with pytest.raises(PlanFrozen, match="コマ 21 of 2026-06-01 is frozen: its gate closed at 2026-06-01T09:00:00"):
        plans.submit("operator-1", DAY, {21: (5.0, 0.0), 30: (5.0, 0.0)}, now, strict=True, reason="manual")
    refused = [r for r in ledger.query(kinds=["audit"]) if r.payload["action"] == "balancing_plan_refused"]
    assert len(refused) == 1 and refused[0].payload["koma"] == [21] and refused[0].actor == "operator-1"
    assert plans.current(DAY, now).at[30, "demand_kwh"] == 12.0  # nothing of the refused edit applied
    rec, changed = plans.submit("operator-1", DAY, {30: (5.0, 0.0)}, now, strict=True, reason="manual")
    assert changed == [30] and rec.payload["revision"] == 3
    for bad in ({0: (1.0, 0.0)}, {5: (-1.0, 0.0)}, {5: (float("nan"), 0.0)}):
        with pytest.raises(PlanError):
            plans.submit("operator-1", DAY, bad, now, strict=True)


def test_imbalance_kpi_of_the_fixture_day_equals_the_hand_computed_value(ledger):
    prices = read_imbalance_csv(DATA / "imbalance_2026_06_sample.csv", "東北")
    plans = BalancingPlans(ledger, "bg", TZ)
    plans.submit("planner", DAY, {k: (6.0, 1.0) for k in range(1, 49)}, datetime(2026, 5, 31, tzinfo=timezone.utc),
                 strict=False)
    imp, exp = np.full(48, 6.0), np.full(48, 1.0)
    imp[9] = 4.0       # コマ 10: 2 kWh less bought → long 2 kWh at the 余剰 price 8.39
    exp[19] = -0.5 + 1.0  # コマ 20: 0.5 kWh less sold …
    imp[19] = 7.0      # … and 1 kWh more bought → short 1.5 kWh at the 不足 price 13.73
    exp[36] = 1.5      # コマ 37: 0.5 kWh more sold → long 0.5 kWh at 19.71
    table = imbalance(plans.current(DAY), imp, exp, prices)
    kpi = imbalance_kpis(table)
    # 2 × 8.39 − 1.5 × 13.73 + 0.5 × 19.71 = 16.78 − 20.595 + 9.855 = 6.04 yen received
    assert kpi["yen"] == pytest.approx(6.04, abs=1e-9)
    assert kpi["surplus_kwh"] == pytest.approx(2.5) and kpi["shortage_kwh"] == pytest.approx(1.5)
    assert kpi["abs_kwh"] == pytest.approx(4.0) and kpi["koma_within_3pct"] == 45
    assert table.loc[20, "imbalance_kwh"] == pytest.approx(-1.5)


def test_plan_file_export(ledger):
    plans = BalancingPlans(ledger, "bg-izumi", TZ)
    plans.submit("planner", DAY, {1: (2.5, 0.0), 48: (1.0, 0.25)}, datetime(2026, 5, 31, tzinfo=timezone.utc),
                 strict=False)
    text = plan_file(plans.current(DAY, koma_starts(DAY, TZ)[1]), "bg-izumi", DAY, TZ).decode("cp932")
    lines = text.split("\r\n")
    assert lines[0] == "# 計画値同時同量 需要・供給計画,bg-izumi,2026/06/01"
    assert lines[2] == "2026/06/01,1,00:00,00:30,2.500,0.000,1,確定"
    assert lines[3] == "2026/06/01,2,00:30,01:00,,,0,確定"
    assert lines[49] == "2026/06/01,48,23:30,24:00,1.000,0.250,1,未確定"
