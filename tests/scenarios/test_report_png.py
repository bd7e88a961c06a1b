"""``vpp scenario run … --report DIR --png``: the report's plots as PNGs rendered by the system
Chromium (Playwright, never a downloaded browser) from the offline report.html."""
from __future__ import annotations

import struct

import pytest
import yaml

from simulators.scenarios.report import PLOTS
from simulators.scenarios.spec import DATA_DIR
from vpp.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) [px] from the IHDR chunk."""
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def short_scenario(tmp_path_factory):
    data = yaml.safe_load((DATA_DIR / "sunny-day.yaml").read_text())
    data["assertions"] = [{"kpi": "reserve_violations", "max": 0}]
    path = tmp_path_factory.mktemp("sc") / "short.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.timeout(90)
def test_png_plots_are_written(short_scenario, tmp_path, capsys):
    rep = tmp_path / "rep"
    assert main(["scenario", "run", str(short_scenario), "--hours", "1", "--report", str(rep), "--png"]) == 0
    assert "PNG plots:" in capsys.readouterr().err
    html = (rep / "report.html").read_text()
    for name in PLOTS:
        assert f'id="plot-{name}"' in html
        data = (rep / f"{name}.png").read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        w, h = png_size(data)
        assert 800 <= w <= 1300 and 300 <= h <= 500, (name, w, h)  # the plot's box, not the page
        assert len(data) > 10_000  # axes, lines and legend, not a blank box


@pytest.mark.timeout(60)
def test_png_skipped_with_a_reason_without_chromium(short_scenario, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VPP_CHROMIUM", str(tmp_path / "no-chromium"))
    rep = tmp_path / "rep"
    assert main(["scenario", "run", str(short_scenario), "--hours", "0.25", "--report", str(rep), "--png"]) == 0
    err = capsys.readouterr().err
    assert "PNG plots skipped: Chromium not found" in err and "no-chromium" in err
    assert (rep / "report.html").exists() and not list(rep.glob("*.png"))


def test_png_needs_a_report_dir(capsys):
    assert main(["scenario", "run", "sunny-day", "--png"]) == 2
    assert "--png needs --report" in capsys.readouterr().err
