"""Pure differencing of fixed-time cumulative readings into 30-min slot energies."""
from __future__ import annotations

from datetime import datetime

import pandas as pd

from vpp.market.half_hour_metering import HalfHourLog, slot_energy


def test_differences_gaps_no_data_and_backwards():
    r = [(datetime(2026, 1, 5, 10, 0), 1000.0, 50.0), (datetime(2026, 1, 5, 10, 30), 1300.0, 60.0),
         (datetime(2026, 1, 5, 11, 0), 1200.0, 70.0), (datetime(2026, 1, 5, 11, 30), None, 70.0),
         (datetime(2026, 1, 5, 12, 0), 1500.0, 80.0), (datetime(2026, 1, 5, 12, 30), 1600.0, 80.0),
         (datetime(2026, 1, 5, 13, 30), 1800.0, 90.0)]
    e = slot_energy(r, "Asia/Tokyo")
    assert e.index[1] == pd.Timestamp("2026-01-05T01:00Z")  # 10:00–10:30 JST
    assert e["flag"].tolist() == ["missing", "ok", "backwards", "missing", "missing", "ok", "missing"]
    assert e["import_wh"].iloc[1] == 300.0 and e["export_wh"].iloc[1] == 10.0
    assert e["import_wh"].iloc[5] == 100.0 and e["export_wh"].iloc[5] == 0.0
    assert e["import_wh"].isna().tolist() == [f != "ok" for f in e["flag"]]


def test_log_pairs_ea_and_eb_by_latch_time_and_ignores_repeats():
    log, t, t2 = HalfHourLog(), datetime(2026, 1, 5, 10, 0), datetime(2026, 1, 5, 10, 30)
    assert log.record("m", {"import": (t, 10.0)})
    assert log.record("m", {"import": (t, 10.0), "export": (t, 2.0)})
    assert not log.record("m", {"import": (t, 10.0), "export": (t, 2.0)})
    assert log.record("m", {"import": (t2, 20.0), "export": (t, 2.0)})
    assert log.series("m") == [(t, 10.0, 2.0), (t2, 20.0, None)]
    assert slot_energy(log.series("m"), "Asia/Tokyo")["flag"].tolist() == ["missing", "missing"]
