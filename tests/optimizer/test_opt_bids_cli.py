"""``vpp bids`` end to end on the community-centre example config (clear-sky forecast, no
store): offers per 30-min slot, the day-ahead deadline, storm/JMA removal, bad prices."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from vpp.cli import main
from vpp.market.prices import day_slots

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "examples" / "community-centre.yaml"
JMA = ROOT / "tests" / "market" / "data"
DAY = "2026-06-22"


@pytest.fixture
def prices(tmp_path) -> Path:
    from datetime import date

    rows = ["slot_start,capacity_up,capacity_down,energy_up,energy_down,spot"]
    for t in day_slots(date(2026, 6, 22)):
        h = t.tz_convert("Asia/Tokyo").hour
        rows.append(f"{t.isoformat()},{3.0 if 17 <= h < 21 else 0.8},0.5,30,0,{10 + h % 5}")
    p = tmp_path / "prices.csv"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return p


def bids(capsys, *extra, start="2026-06-21T10:00") -> tuple[int, str, str]:
    rc = main(["bids", "--config", str(CONFIG), "--day", DAY, "--start", start, "--weather", "clear-sky",
               "--no-store", "--soc", "0.6", *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_json_offer_per_slot(capsys, prices):
    rc, out, err = bids(capsys, "--json", "--prices", str(prices))
    assert rc == 0, err
    d = json.loads(out)
    assert d["day"] == DAY and d["storm"] is None and not d["late"]
    offers = d["offers"]
    assert len(offers) == 48
    assert offers[0]["slot_start"] == "2026-06-22T00:00:00+09:00"
    assert offers[-1]["slot_start"] == "2026-06-22T23:30:00+09:00"
    assert all(0 <= o["up_kw"] <= 50 and 0 <= o["down_kw"] <= 50 for o in offers)
    evening = [o for o in offers if "T17:" in o["slot_start"] or "T18:" in o["slot_start"]]
    assert all(o["up_kw"] > 0 and o["capacity_price_up"] == 3.0 for o in evening)
    assert d["expected_revenue"] == pytest.approx(sum(o["expected_revenue"] for o in offers), abs=0.1)
    assert 0 < d["revenue_at_risk"] < d["expected_revenue"]
    assert offers[0]["spot"] == 10.0


def test_refuses_after_the_deadline_unless_forced(capsys, prices):
    rc, out, err = bids(capsys, "--json", "--prices", str(prices), start="2026-06-21T14:05")
    assert rc != 0 and "deadline" in err and out == ""
    rc, out, err = bids(capsys, "--csv", "--prices", str(prices), "--force", start="2026-06-21T14:05")
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 48 and float(rows[36]["up_kw"]) > 0  # 18:00


def test_storm_and_jma_warning_remove_only_affected_slots(capsys, prices):
    # --storm without a deadline: the storm is due at the start of the day → every slot goes
    rc, out, err = bids(capsys, "--json", "--prices", str(prices), "--storm")
    assert rc == 0, err
    d = json.loads(out)
    assert d["storm"].startswith("storm mode") and d["expected_revenue"] == 0 and len(d["removed"]) == 48
    assert all(o["up_kw"] == 0 and o["down_kw"] == 0 and o["reason"] == d["storm"] for o in d["offers"])
    # due at 20:00 with the default 12 h lead: slots from 08:00 on are removed, the night stays offered
    rc, out, err = bids(capsys, "--json", "--prices", str(prices), "--storm", "--storm-deadline", "2026-06-22T20:00")
    d = json.loads(out)
    assert rc == 0, err
    assert [r["slot_start"][11:16] for r in d["removed"]][:2] == ["08:00", "08:30"] and len(d["removed"]) == 32
    assert sum(o["up_kw"] + o["down_kw"] for o in d["offers"][:16]) > 0
    # the recorded JMA episode (Sept 18, office area 040000): 大雨警報 at warning level from 15:00,
    # minus the 12 h lead → removed from 03:00 (気仙沼市's open-ended 暴風警報 from 16:27 on top);
    # the small hours stay offered
    rc, out, err = main(["bids", "--config", str(CONFIG), "--day", "2026-09-18", "--start", "2026-09-17T10:00",
                         "--weather", "clear-sky", "--no-store", "--soc", "0.6", "--json",
                         "--jma", str(JMA / "jma_040000_heavy_rain_issued.json")]), *capsys.readouterr()
    assert rc == 0, err
    d = json.loads(out)
    assert d["storm"].startswith("JMA 大雨警報 (03) in force") and len(d["removed"]) == 42
    assert d["removed"][0]["slot_start"] == "2026-09-18T03:00:00+09:00"
    assert all(o["reason"] == "" or "JMA" not in o["reason"] for o in d["offers"][:6])


def test_bad_prices_refused(capsys, tmp_path):
    p = tmp_path / "wrong_day.csv"
    p.write_text("slot_start,capacity_up\n2026-06-23T00:00:00+09:00,2\n", encoding="utf-8")
    rc, out, err = bids(capsys, "--json", "--prices", str(p))
    assert rc == 2 and "wrong day" in err and out == ""
    p.write_text("slot_start,capacity_up\n2026-06-22T00:00:00+09:00,-2\n", encoding="utf-8")
    rc, out, err = bids(capsys, "--json", "--prices", str(p))
    assert rc == 2 and "negative" in err


def test_forecast_error_history_shrinks_the_offers(capsys, prices, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    errors = tmp_path / "errors.csv"
    errors.write_text("pv_error_w,load_error_w\n" + "\n".join(
        f"{a:.0f},{b:.0f}" for a, b in zip(rng.normal(0, 8000, 300), rng.normal(0, 3000, 300))), encoding="utf-8")
    total = {}
    for key, extra in (("p50", ()), ("p10/p90", ("--errors", str(errors)))):
        rc, out, err = bids(capsys, "--json", "--prices", str(prices), *extra)
        assert rc == 0, err
        d = json.loads(out)
        total[key] = sum(o["up_kw"] + o["down_kw"] for o in d["offers"])
    assert 0 < total["p10/p90"] < total["p50"]
