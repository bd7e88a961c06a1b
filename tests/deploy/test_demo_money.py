"""The shipped community-centre example plans on market prices out of the box: a JEPX-layout
spot file beside it, sample capacity prices; `vpp bids --json` offers ΔkW and revenue."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.testkit.jepx_files import spot_csv
from vpp.config import read_config
from vpp.forecast.site import forecast_site

ROOT = Path(__file__).resolve().parents[2]
CENTRE = ROOT / "deploy" / "examples" / "community-centre.yaml"


@pytest.mark.slow  # one CLI process planning a day
def test_bids_on_the_shipped_example_offer_kw_and_stdout_is_pure_json():
    out = subprocess.run([sys.executable, "-m", "vpp.cli", "bids", "--config", str(CENTRE), "--day", "2026-12-08",
                          "--start", "2026-12-07T09:00+09:00", "--json", "--weather", "clear-sky", "--no-store",
                          "--soc", "0.6"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)  # the whole stdout is one JSON document
    up = [o["up_kw"] for o in doc["offers"]]
    assert sum(u > 1.0 for u in up) >= 12 and doc["expected_revenue"] > 0
    # the spot column is the shipped file's 東北 price (2026-12-08 is after it: the stated same-weekday forecast)
    assert all(o["spot"] is not None and o["spot"] > 0 for o in doc["offers"])


def test_shipped_spot_file_drives_the_plan_and_a_replacement_changes_it(tmp_path):
    cfg = read_config(CENTRE)
    assert cfg.prices.source == "jepx" and Path(cfg.prices.spot_csv).is_file()
    now = datetime(2026, 11, 10, 15, 0, tzinfo=timezone.utc)
    fc, _ = forecast_site(cfg, now)
    assert fc.price_version.startswith("jepx:東北:jepx-spot-synthetic-2026.csv:")
    assert set(fc.tariff["price_source"]) == {"jepx"}
    # the same config beside another JEPX file (older 年月日 header), flat but for an evening spike
    shutil.copy(CENTRE, tmp_path / "site.yaml")
    flat = [np.where(np.arange(48) == 37, 90.0, 5.0) for _ in range(28)]
    (tmp_path / "jepx-spot-synthetic-2026.csv").write_bytes(spot_csv(date(2026, 11, 2), 28, header="年月日",
                                                                      area_prices=flat))
    other = read_config(tmp_path / "site.yaml")
    fc2, _ = forecast_site(other, now)
    assert fc2.price_version != fc.price_version
    spot2 = fc2.tariff["spot_per_kwh"].to_numpy()
    assert set(np.unique(spot2)) == {5.0, 90.0}
    assert not np.allclose(spot2, fc.tariff["spot_per_kwh"].to_numpy())


def test_example_names_its_sample_values():
    text = CENTRE.read_text(encoding="utf-8")
    assert "SYNTHETIC" in text and "SAMPLE" in text
    raw = yaml.safe_load(text)
    assert raw["vpp"]["capacity_price_per_kw"] > 0
