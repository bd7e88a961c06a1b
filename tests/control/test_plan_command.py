import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from drivers.protocols import DeviceKind, Snapshot
from vpp.cli import main
from vpp.config import read_config
from vpp.storage import open_store

EXAMPLES = Path(__file__).parents[2] / "deploy" / "examples"


def config_with_store(tmp_path) -> Path:
    data = yaml.safe_load((EXAMPLES / "community-centre.yaml").read_text())
    data["storage"] = {"backend": "embedded", "path": str(tmp_path / "vpp.sqlite")}
    p = tmp_path / "site.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_plan_json_uses_soc_flag_and_keeps_floor(capsys):
    rc = main(["plan", "--config", str(EXAMPLES / "community-centre.yaml"), "--json", "--no-store",
               "--weather", "clear-sky", "--soc", "0.7", "--start", "2026-06-21T00:00+09:00"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    s = out["schedule"]
    assert s["n"] == 192 and s["slot_s"] == 900 and s["start"] == "2026-06-20T15:00:00+00:00"
    assert out["soc0"] == {"bat1": 0.7} and out["weather"]["fallback"]
    assert min(s["soc"]["bat1"]) >= 0.30 - 1e-6
    assert s["solver"]["validated"]


def test_plan_reads_soc_from_store_and_csv_weather(tmp_path, capsys):
    cfg = config_with_store(tmp_path)
    config = read_config(cfg)
    with open_store(config.storage, site=config.site.name) as store:
        store.write([Snapshot("bat1", DeviceKind.BATTERY, datetime(2026, 6, 20, 14, 50, tzinfo=timezone.utc),
                              {"soc": 0.83, "power_w": 0.0})])
    idx = pd.date_range("2026-06-20T12:00Z", periods=72, freq="1h")
    pd.DataFrame({"cloud_cover": 100.0, "temp_air": 15.0}, index=idx.rename("time")).to_csv(tmp_path / "w.csv")
    rc = main(["plan", "--config", str(cfg), "--json", "--weather", str(tmp_path / "w.csv"),
               "--start", "2026-06-21T00:00+09:00"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["soc0"] == {"bat1": 0.83} and "stored reading" in out["soc0_source"]["bat1"]
    assert not out["weather"]["fallback"]
    # overcast: far below the clear-sky peak of a 50 kWp site
    assert 0 < max(out["schedule"]["pv_w"]) < 20_000


def test_plan_table(capsys):
    rc = main(["plan", "--config", str(EXAMPLES / "three-homes.yaml"), "--no-store", "--weather", "clear-sky",
               "--start", "2026-06-21T00:00+09:00"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "h003-bat SoC %" in text and "21 12:00" in text and "validated True" in text
    assert np.isfinite(float(text.split("cost ")[1].split(" ")[0].replace(",", "")))
