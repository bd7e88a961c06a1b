"""Schemathesis over the published OpenAPI schema against uvicorn on loopback: no 5xx and
every documented response matches its schema, with each role's key (a refused operation
answers 403 before its input is looked at). Status routes (``/status`` … owned by the
runtime, 503 without a control loop by design) and the dashboard are not fuzzed here."""
from __future__ import annotations

import asyncio
import threading

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from vpp.api.app import SiteServices, create_app
from vpp.api.server import bind_socket
from vpp.market.flexibility import BatteryFlexibility
from vpp.config import updated

FUZZED = ("/api/v1/health", "/api/v1/bids", "/api/v1/offers", "/api/v1/awards", "/api/v1/ledger", "/api/v1/resources",
          "/api/v1/flexibility", "/api/v1/dispatches", "/api/v1/baseline", "/api/v1/vpp", "/api/v1/costs")


class Served:
    def __init__(self, app) -> None:
        self.sock = bind_socket()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True)

    def __enter__(self) -> "Served":
        self.thread.start()
        while not self.server.started:
            self.thread.join(0.02)
            assert self.thread.is_alive()
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.mark.parametrize("role", ["operator", "aggregator", "viewer"])
def test_schemathesis_no_5xx_and_conforming_responses(key_file, make_config, role):
    path, keys = key_file
    cfg = updated(make_config(), api={"keys_path": str(path)})
    app = create_app(cfg, SiteServices(BatteryFlexibility(cfg, lambda _id: 0.6)))
    auth = {"Authorization": f"Bearer {keys[role]}"}
    with Served(app) as srv:
        schema = schemathesis.openapi.from_url(f"{srv.url}/api/v1/openapi.json")
        ops = [r.ok() for r in schema.get_all_operations()]
        ops = [op for op in ops if op.path.startswith(FUZZED)]
        assert {op.path for op in ops} >= {"/api/v1/dispatches", "/api/v1/flexibility", "/api/v1/resources"}
        failures = []
        for op in ops:
            @settings(max_examples=12, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy())
            def run(case):
                resp = case.call(base_url=srv.url, headers=auth, timeout=10)
                case.validate_response(resp, checks=[not_a_server_error, response_schema_conformance], headers=auth)

            try:
                run()
            except Exception as e:  # noqa: BLE001 - collect every operation's failure, then fail once
                failures.append(f"{op.method.upper()} {op.path}: {str(e)[:800]}")
        assert not failures, "\n\n".join(failures)
