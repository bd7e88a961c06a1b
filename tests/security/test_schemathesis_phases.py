"""schemathesis' coverage, fuzzing and stateful phases (the ``st run`` command line, as a CI
job would run it) against uvicorn on loopback, with the operator's, an aggregator's and a
viewer's key: no 5xx and every documented response conforms to its schema. One server for
the module; few examples per operation (a fixed seed) to keep the wall time modest. The
stateful phase (a second run, over offers, awards and dispatches) follows the links the
schema declares (:mod:`vpp.api.openapi_links`) with domain-valid offers and dispatch windows
from :mod:`tests.security.st_stateful_hooks`; for the operator the test checks that offers
were awarded and awards dispatched through those links. Status routes (503 without a control
loop by design) and the dashboard are not in it."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.api.test_api_schemathesis import Served
from vpp.api.app import SiteServices, create_app
from vpp.config import updated
from vpp.market.flexibility import BatteryFlexibility
from vpp.slots import ceil_time

pytestmark = pytest.mark.slow  # ~45 s for the three roles on a quiet machine (15 s: operator chains)
ST = Path(sys.executable).with_name("st")
CHAIN = r"^/api/v1/(offers|awards|dispatches)"  # the operations the links chain
ROOT = Path(__file__).resolve().parents[2]
PATHS = r"^/api/v1/(health|me|bids|offers|awards|ledger|resources|flexibility|dispatches|baseline|vpp|costs)"


@pytest.fixture(scope="module")
def served(key_file, tmp_path_factory):
    from tests.api.conftest import site_config

    path, keys = key_file
    cfg = updated(site_config(tmp_path_factory.mktemp("st")), api={"keys_path": str(path)})
    with Served(create_app(cfg, SiteServices(BatteryFlexibility(cfg, lambda _id: 0.6)))) as srv:
        yield srv, keys


def slot_start() -> str:
    """A slot start the server's real clock still accepts for the whole test: two hours ahead."""
    now = datetime.now(UTC)
    return ceil_time(now + timedelta(hours=2)).isoformat()


def st_run(srv_url: str, key: str, phases: str, report: Path, env: dict[str, str] | None = None,
           paths: str = PATHS, examples: int = 3, mode: str = "all", config: Path | None = None,
           max_time: int | None = None):
    """``st run`` of ``phases`` over ``paths`` with ``key``; the parsed JSON report and the process."""
    cmd = [str(ST) if ST.exists() else "st", *(["--config-file", str(config)] if config else []), "run",
           f"{srv_url}/api/v1/openapi.json", "--phases", phases, "--max-examples", str(examples), "--mode", mode,
           "--seed", "14", "--workers", "1", "--checks", "not_a_server_error,response_schema_conformance",
           "--include-path-regex", paths, "-H", f"Authorization: Bearer {key}", "--no-shrink",
           "--suppress-health-check", "all", "--request-timeout", "30",
           *(["--max-time", str(max_time)] if max_time else []),
           "--report", "json", "--report-json-path", str(report)]
    # run in the test's tmp dir (schemathesis writes its cache under the working directory)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=report.parent,
                       env={**os.environ, **(env or {}), "PYTHONPATH": path})
    assert report.exists(), r.stdout[-3000:] + r.stderr[-2000:]
    return json.loads(report.read_text()), r


def declared_links_only(tmp_path: Path) -> Path:
    """A schemathesis config: the stateful phase follows the declared links only (no inferred
    ones, which lead to reads of unknown ids)."""
    path = tmp_path / "schemathesis.toml"
    path.write_text("[phases.stateful]\nmax-steps = 12\nlink-calibration = false\ninference.algorithms = []\n")
    return path


@pytest.mark.parametrize("role", ["operator", "aggregator", "viewer"])
def test_coverage_fuzzing_and_stateful_phases_are_clean(served, role, tmp_path):
    srv, keys = served
    rep, r = st_run(srv.url, keys[role], "coverage,fuzzing", tmp_path / "fuzz.json")
    assert {p: rep["phases"][p]["status"] for p in ("coverage", "fuzzing")} == {
        "coverage": "success", "fuzzing": "success"}, (rep["phases"], r.stdout[-3000:])
    assert rep["failures"] == [] and rep["errors"] == [] and rep["exit_code"] == 0, r.stdout[-5000:]
    assert rep["test_cases"]["generated"] > 100 and rep["test_cases"]["with_failures"] == 0
    # the stateful phase over the chained operations, with domain-valid offers and dispatch
    # windows (st_stateful_hooks). Only the operator creates offers, so only its chains run
    # the whole offer → award → dispatch path; it runs on a time budget (the state machine
    # reaches offers late), the others on a few scenarios.
    log = tmp_path / "calls.jsonl"
    env = {"SCHEMATHESIS_HOOKS": "tests.security.st_stateful_hooks", "VPP_ST_SLOT": slot_start(),
           "VPP_ST_LOG": str(log)}
    chains = role == "operator"
    rep, r = st_run(srv.url, keys[role], "stateful", tmp_path / "stateful.json", env, paths=CHAIN,
                    examples=100 if chains else 20, mode="positive", config=declared_links_only(tmp_path),
                    max_time=15 if chains else None)
    assert rep["phases"]["stateful"]["status"] == "success", (rep["phases"], r.stdout[-3000:])
    assert rep["failures"] == [] and rep["errors"] == [] and rep["exit_code"] == 0, r.stdout[-5000:]
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", r.stdout)
    assert links is not None, r.stdout[-3000:]
    print(f"{role}: {links[0]}")
    if not chains:
        return
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    made = {op: {c["id"] for c in calls if c["path"] == f"/api/v1/{op}" and c["status"] == 201}
            for op in ("offers", "awards", "dispatches")}
    awarded = [c for c in calls if c["path"] == "/api/v1/awards" and c["status"] == 201
               and c["offer_id"] in made["offers"]]
    dispatched = [c for c in calls if c["path"] == "/api/v1/dispatches" and c["status"] == 201
                  and c["award_id"] in made["awards"]]
    assert awarded and dispatched, (len(made["offers"]), len(awarded), len(dispatched), r.stdout[-3000:])
    # the declared links from offers, awards and dispatches (8): most of them followed
    assert int(links[1]) >= 6 and int(links[2]) == 8, links[0]
