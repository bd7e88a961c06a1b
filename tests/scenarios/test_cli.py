"""``vpp scenario``: list, run with a report, and a failing assertion's exit status."""
from __future__ import annotations

import json

import pytest
import yaml

from simulators.scenarios.spec import DATA_DIR, list_scenarios
from vpp.cli import main


def test_list_names_shipped_scenarios(capsys):
    assert main(["scenario", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("sunny-day", "typhoon", "device-faults"):
        assert name in out and name in list_scenarios()


@pytest.mark.timeout(60)
def test_run_failing_assertion_exits_nonzero_and_reports(tmp_path, capsys):
    data = yaml.safe_load((DATA_DIR / "sunny-day.yaml").read_text())
    data["assertions"] = [{"kpi": "reserve_violations", "max": 0},
                          {"kpi": "pv_kwh", "min": 1e6}]  # impossible: must fail
    path = tmp_path / "impossible.yaml"
    path.write_text(yaml.safe_dump(data))
    rc = main(["scenario", "run", str(path), "--hours", "1", "--report", str(tmp_path / "rep"), "--json"])
    assert rc == 1
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["passed"] is False and summary["kpis"]["steps"] == 60
    assert any("pv_kwh" in f for f in summary["failures"])
    assert json.loads((tmp_path / "rep" / "kpis.json").read_text())["scenario"] == "sunny-day"
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Plotly.newPlot" in html and len(html) > 1_000_000  # plotly.js inline: opens offline
    assert "<script src=\"http" not in html


@pytest.mark.timeout(60)
def test_run_passing_scenario_exits_zero(tmp_path):
    data = yaml.safe_load((DATA_DIR / "sunny-day.yaml").read_text())
    data["assertions"] = [{"kpi": "reserve_violations", "max": 0}, {"kpi": "steps", "min": 30}]
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["scenario", "run", str(path), "--hours", "0.5", "--speed", "max"]) == 0
