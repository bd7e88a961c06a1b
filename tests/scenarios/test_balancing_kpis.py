"""HIL 計画値同時同量 KPIs: the plan at each gate closure against the metered コマ."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from simulators.scenarios.balancing_kpis import GatePlans
from tests.testkit.sites import make_site

T0 = datetime(2026, 6, 1, 0, 0, tzinfo=timezone.utc)


def test_gate_plans_against_metered_grid():
    # a plan of 15-min slots from T0: 4 kW import throughout, 2 kW export in the first 15 min of 02:00
    imp, exp = np.full(16, 4000.0), np.zeros(16)
    exp[8] = 2000.0
    sched = SimpleNamespace(start=T0, slot_s=900, n=16, grid_import_w=imp, grid_export_w=exp)
    g = GatePlans()
    for m in range(0, 240, 1):  # every minute for 4 h; gates at each half hour
        g.on_step(T0 + timedelta(minutes=m), SimpleNamespace(schedule=sched))
    # gates at 00:00 … 03:30 plan the コマ 01:00 … 04:30; the plan covers up to 04:00
    assert sorted(g.planned) == [T0 + timedelta(hours=1, minutes=30 * k) for k in range(6)]
    assert g.planned[T0 + timedelta(hours=2)] == pytest.approx((2.0, 0.5))
    # metered: 4 kW import all along, except 6 kW during the 02:30 コマ
    t = pd.date_range(T0, periods=240, freq="60s")
    grid = np.where((t >= T0 + timedelta(hours=2, minutes=30)) & (t < T0 + timedelta(hours=3)), 6000.0, 4000.0)
    rec = pd.DataFrame({"grid_w": grid, "dt_s": 60.0}, index=t)
    k = g.kpis(rec, make_site("shelter"))
    # 02:00: planned net −1.5 kWh, metered −2 → short 0.5; 02:30: planned −2, metered −3 → short 1
    assert k["imbalance_koma"] == 6 and k["imbalance_shortage_kwh"] == pytest.approx(1.5)
    assert k["imbalance_surplus_kwh"] == pytest.approx(0.0) and np.isnan(k["imbalance_yen"])
