"""Fixtures of the bus tests: a real ``nats-server`` with JetStream on a free loopback port
(function scope: the fault tests kill it), towns of in-process homes on a manual clock."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.testkit.tiers import tier
from vpp.bus.server import NatsServer
from vpp.edge.home_physics import ManualClock

T0 = datetime(2026, 12, 5, 3, 0, tzinfo=timezone.utc)


@pytest.fixture
@tier("runtime")
def nats_server(tmp_path):
    srv = NatsServer(tmp_path / "nats").start()
    yield srv
    srv.kill()


@pytest.fixture
def clock():
    return ManualClock(T0)
