"""``vpp prices``: a bad file is refused naming row and field and leaves nothing installed;
a good one is installed whole; ``show`` states which days are forecast."""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from tests.testkit.jepx_files import spot_csv
from vpp.cli import main

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "prices"


def test_check_install_and_nothing_partial(tmp_path, capsys):
    assert main(["prices", "check", str(DATA / "spot_summary_2016_sample.csv")]) == 0
    assert "2 day(s) 2016-06-01 … 2016-06-02, 96 コマ" in capsys.readouterr().out
    assert main(["prices", "check", str(DATA / "imbalance_2026_06_sample.csv"), "--kind", "imbalance"]) == 0
    good = tmp_path / "spot.csv"
    good.write_bytes(spot_csv(date(2026, 6, 1), 2))
    dest = tmp_path / "prices"
    assert main(["prices", "install", str(good), str(dest)]) == 0
    assert (dest / "spot.csv").read_bytes() == good.read_bytes()
    lines = good.read_bytes().decode("cp932").split("\r\n")
    lines[60] = lines[59]  # a duplicated コマ on the second day
    good.write_bytes("\r\n".join(lines).encode("cp932"))
    capsys.readouterr()
    assert main(["prices", "install", str(good), str(dest)]) == 2
    err = capsys.readouterr().err
    assert "row 61" in err and "duplicate コマ" in err
    assert (dest / "spot.csv").read_bytes() != good.read_bytes()  # the old file stays whole
    assert sorted(p.name for p in dest.iterdir()) == ["spot.csv"]  # no partial leftovers


def test_show_states_forecast_days(capsys):
    cfg = ROOT / "deploy" / "examples" / "community-centre.yaml"
    assert main(["prices", "show", "--config", str(cfg), "--day", "2027-01-04", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"].startswith("jepx:東北:") and len(doc["slots"]) == 48
    assert {s["source"] for s in doc["slots"]} == {"forecast 2026-11-23"}  # the latest published Monday
