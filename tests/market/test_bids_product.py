"""``vpp bids --product``: the bid pooled with other resources' bids up to the EPRX lot;
slots that cannot reach it are dropped with the reason; stdout stays pure JSON."""
from __future__ import annotations

import json
from pathlib import Path

from vpp.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "examples" / "community-centre.yaml"
ARGS = ["bids", "--config", str(CONFIG), "--day", "2026-12-08", "--start", "2026-12-07T09:00+09:00",
        "--weather", "clear-sky", "--no-store", "--soc", "0.6", "--json"]


def test_pooling_the_site_with_other_bids_up_to_the_lot(capsys, tmp_path):
    assert main(ARGS) == 0
    alone = json.loads(capsys.readouterr().out)
    up = {o["slot_start"]: o["up_kw"] for o in alone["offers"]}
    assert max(up.values()) > 1.0 and "product" not in alone
    # the site alone never reaches 1 MW: every slot is dropped, with the reason
    assert main(ARGS + ["--product", "三次②"]) == 0
    doc = json.loads(capsys.readouterr().out)
    p = doc["product"]
    assert (p["name"], p["dispatch"], p["min_lot_kw"], p["unit_s"]) == ("三次②", "simplified", 1000.0, 1800)
    assert all(s["offered_kw"] == 0 for s in p["slots"])
    assert any(s["reason"].startswith("below the minimum lot") for s in p["slots"])
    # pooled with a bid that holds a flat 980 kW (another town's list pattern), slots with ≥ 20 kW here pass
    other = dict(alone, offers=[dict(o, up_kw=980.0) for o in alone["offers"]])
    f = tmp_path / "town.json"
    f.write_text(json.dumps(other))
    assert main(ARGS + ["--product", "三次②", "--pool", str(f)]) == 0
    p = json.loads(capsys.readouterr().out)["product"]
    assert len(p["resources"]) == 2
    for s in p["slots"]:
        total = up[s["slot_start"]] + 980.0
        assert s["pooled_kw"] == round(total, 3)
        assert s["offered_kw"] == (float(int(total)) if total >= 1000 else 0.0)
        assert bool(s["reason"]) == (total < 1000)
    assert sum(s["offered_kw"] > 0 for s in p["slots"]) >= 6


def test_bad_product_or_pool_file_is_exit_2(capsys, tmp_path):
    assert main(ARGS + ["--product", "四次"]) == 2
    assert "unknown product '四次'" in capsys.readouterr().err
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"day": "2026-12-09", "offers": []}))
    assert main(ARGS + ["--product", "三次②", "--pool", str(f)]) == 2
    assert "is for 2026-12-09, not 2026-12-08" in capsys.readouterr().err
