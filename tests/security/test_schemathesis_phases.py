"""schemathesis' coverage, fuzzing and stateful phases (the ``st run`` command line, as a CI
job would run it) against uvicorn on loopback, with the operator's, an aggregator's and a
viewer's key: no 5xx and every documented response conforms to its schema. One server for
the module; few examples per operation (a fixed seed) to keep the wall time modest. The
stateful phase follows the links the schema declares (:mod:`vpp.api.openapi_links`).
Status routes (503 without a control loop by design) and the dashboard are not in it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.test_api_schemathesis import Served
from vpp.api.app import SiteServices, create_app
from vpp.config import updated
from vpp.market.flexibility import BatteryFlexibility

pytestmark = pytest.mark.slow  # ~3 × 8 s of generated requests on a quiet machine
ST = Path(sys.executable).with_name("st")
PATHS = r"^/api/v1/(health|me|bids|offers|awards|ledger|resources|flexibility|dispatches|baseline|vpp|costs)"


@pytest.fixture(scope="module")
def served(key_file, tmp_path_factory):
    from tests.api.conftest import site_config

    path, keys = key_file
    cfg = updated(site_config(tmp_path_factory.mktemp("st")), api={"keys_path": str(path)})
    with Served(create_app(cfg, SiteServices(BatteryFlexibility(cfg, lambda _id: 0.6)))) as srv:
        yield srv, keys


@pytest.mark.parametrize("role", ["operator", "aggregator", "viewer"])
def test_coverage_fuzzing_and_stateful_phases_are_clean(served, role, tmp_path):
    srv, keys = served
    report = tmp_path / "report.json"
    cmd = [str(ST) if ST.exists() else "st", "run", f"{srv.url}/api/v1/openapi.json",
           "--phases", "coverage,fuzzing,stateful", "--max-examples", "3", "--seed", "14", "--workers", "1",
           "--checks", "not_a_server_error,response_schema_conformance", "--include-path-regex", PATHS,
           "-H", f"Authorization: Bearer {keys[role]}", "--no-shrink", "--suppress-health-check", "all",
           "--request-timeout", "30", "--report", "json", "--report-json-path", str(report)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert report.exists(), r.stdout[-3000:] + r.stderr[-2000:]
    rep = json.loads(report.read_text())
    assert {p: rep["phases"][p]["status"] for p in ("coverage", "fuzzing", "stateful")} == {
        "coverage": "success", "fuzzing": "success", "stateful": "success"}, (rep["phases"], r.stdout[-3000:])
    assert rep["failures"] == [] and rep["errors"] == [] and rep["exit_code"] == 0, r.stdout[-5000:]
    assert rep["test_cases"]["generated"] > 100 and rep["test_cases"]["with_failures"] == 0
