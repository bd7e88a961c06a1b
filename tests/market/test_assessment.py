"""Assessment II data: delivered kW per コマ from the meter's separately metered 30-min flows
against the baseline, hand-computed over a real embedded store; only コマ that are over."""
from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tests.testkit.sites import make_site
from vpp.market.assessment import COLUMNS, assessment_csv, assessment_rows, delivered_kw
from vpp.market.dispatch import Dispatch, DispatchRequest
from vpp.market.ledger import Ledger

W0 = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)  # 14:00 in Tokyo: コマ 29
W1 = W0 + timedelta(hours=1)


def test_delivered_kw_by_hand():
    # baseline 20 kW; slot 1 imported 3 kWh (6 kW); slot 2 imported 3 and exported 1 kWh (net 4 kW)
    actual, up = delivered_kw(np.array([20_000.0, 20_000.0]), np.array([3.0, 3.0]), np.array([0.0, 1.0]), "up")
    assert actual.tolist() == [6.0, 4.0] and up.tolist() == [14.0, 16.0]
    _, down = delivered_kw(np.array([2_000.0]), np.array([5.0]), np.array([0.0]), "down")
    assert down.tolist() == [8.0]  # 10 kW metered against a 2 kW baseline: 8 kW absorbed


def dispatch(direction="up", status="accepted") -> Dispatch:
    return Dispatch("d1", DispatchRequest("award-1", "delta", W0, W1, 10_000.0), direction, status, 10_000.0, (),
                    W0 - timedelta(hours=1), W0 - timedelta(hours=1))


def plan_20kw(start, end):
    return pd.Series(20_000.0, index=pd.date_range(start, end, freq="1800s", inclusive="left"))


@pytest.fixture
def metered(tmp_path):
    from vpp.storage.embedded import EmbeddedStore

    cfg = make_site("metered-battery", storage={"backend": "embedded", "path": str(tmp_path / "s.sqlite")})
    store = EmbeddedStore(cfg.storage, site="s")
    store.open()
    # slot 1: 6 kW import; slot 2: 12 kW import for 15 min, then 4 kW export; sampled every 10 s
    t0 = int(W0.timestamp())
    store.write_prepared([("s", "m1", "meter", (t0 + k) * 10**9, "good", "",
                           json.dumps({"power_w": 6_000.0 if k < 1800 else 12_000.0 if k < 2700 else -4_000.0}))
                          for k in range(0, 3601, 10)])
    led = Ledger.open(tmp_path / "l.sqlite", clock=lambda: W1)
    yield cfg, store, led
    store.close()
    led.close()


def test_rows_hand_computed_and_only_once_the_koma_is_over(metered):
    cfg, store, led = metered
    mid = assessment_rows([dispatch()], led, store, cfg, W0, W1, W0 + timedelta(minutes=40), plan_import=plan_20kw)
    assert [r["koma"] for r in mid["rows"]] == [29]  # the second コマ is still running
    r1 = mid["rows"][0]
    assert (r1["day"], r1["start"], r1["ready_by"]) == ("2026-11-25", "2026-11-25T05:00:00+00:00", "2026-11-25T06:00:00+00:00")
    # 20 kW baseline − 6 kW metered = 14 kW delivered (±0.05: the ramp to 12 kW at 05:30 is interpolated)
    assert r1["baseline_kw"] == 20.0 and r1["instructed_kw"] == 10.0
    assert r1["actual_kw"] == pytest.approx(6.0, abs=0.05) and r1["delivered_kw"] == pytest.approx(14.0, abs=0.05)
    out = assessment_rows([dispatch()], led, store, cfg, W0, W1, W1, plan_import=plan_20kw)
    r2 = out["rows"][1]
    # 3 kWh in − 1 kWh out = 2 kWh = 4 kW net (±0.05: the 10-s sign change is interpolated); 20 − 4 = 16 kW
    assert r2["koma"] == 30 and r2["status"] == "ok"
    assert r2["actual_kw"] == pytest.approx(4.0, abs=0.05) and r2["delivered_kw"] == pytest.approx(16.0, abs=0.05)
    # the window selects コマ; a rejected dispatch has none; no plan and no store: skipped with the reason
    assert [r["koma"] for r in assessment_rows([dispatch()], led, store, cfg, W0 + timedelta(minutes=30), W1, W1,
                                               plan_import=plan_20kw)["rows"]] == [30]
    assert assessment_rows([dispatch(status="rejected")], led, store, cfg, W0, W1, W1, plan_import=plan_20kw) \
        == {"rows": [], "skipped": []}
    nob = assessment_rows([dispatch()], led, None, cfg, W0, W1, W1)
    assert nob["rows"] == [] and nob["skipped"][0]["dispatch_id"] == "d1" and "no metered history" in nob["skipped"][0]["reason"]


def test_down_dispatch_and_unmetered_koma(metered):
    cfg, store, led = metered
    down = Dispatch("d2", DispatchRequest("award-2", "delta", W0, W0 + timedelta(minutes=30), 5_000.0), "down",
                    "accepted", 5_000.0, (), W0, W0)
    (r,) = assessment_rows([down], led, store, cfg, W0, W1, W1, plan_import=plan_20kw)["rows"]
    # asked to absorb, the site imported 6 kW against a 20 kW baseline: −14 kW delivered
    assert r["direction"] == "down" and r["delivered_kw"] == pytest.approx(-14.0, abs=0.05)
    late = W1 + timedelta(minutes=30)  # no meter reading at all in 06:30–07:00
    gone = Dispatch("d3", DispatchRequest("award-3", "delta", late, late + timedelta(minutes=30), 5_000.0), "up",
                    "accepted", 5_000.0, (), W0, W0)
    (m,) = assessment_rows([gone], led, store, cfg, W0, late + timedelta(hours=1), late + timedelta(hours=1),
                           plan_import=plan_20kw)["rows"]
    assert (m["status"], m["delivered_kw"], m["actual_kw"], m["baseline_kw"]) == ("missing", None, None, 20.0)


def test_csv_has_the_columns_and_empty_cells_for_missing():
    rows = [{k: None for k in COLUMNS} | {"dispatch_id": "d1", "koma": 3, "delivered_kw": 1.5, "status": "missing"}]
    parsed = list(csv.DictReader(io.StringIO(assessment_csv(rows))))
    assert tuple(parsed[0].keys()) == COLUMNS
    assert (parsed[0]["koma"], parsed[0]["delivered_kw"], parsed[0]["baseline_kw"]) == ("3", "1.5", "")
