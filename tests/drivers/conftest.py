"""Fixtures: a simulated site (real Modbus TCP on free loopback ports) and a fleet polling it."""
from __future__ import annotations

import socket
from datetime import datetime, timezone
from pathlib import Path

import pytest

from drivers.fleet import DriverFleet
from simulators.clock import SimClock
from simulators.site import SimulatedSite
from tests.testkit.sites import overridden
from vpp.config import SiteConfig, read_config

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"
NOON_JST = datetime(2026, 6, 20, 3, 0, tzinfo=timezone.utc)


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (sockets held open together so none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def fast_config(name: str) -> SiteConfig:
    """An example site on free ports with short timeouts and no in-poll retries."""
    cfg = read_config(EXAMPLES / name)
    keys = sorted({(d.connection.host, d.connection.port) for d in cfg.devices})
    ports = dict(zip(keys, free_ports(len(keys))))
    devices = [{**d.model_dump(mode="json"), "timeout_s": 0.3, "retries": 0, "poll_interval_s": 0.1,
                "connection": {**d.connection.model_dump(mode="json"),
                               "port": ports[(d.connection.host, d.connection.port)]}}
               for d in cfg.devices]
    return overridden(cfg, devices=devices)


@pytest.fixture
async def centre():
    """(site, fleet) for the community centre at noon, manual clock."""
    cfg = fast_config("community-centre.yaml")
    site = SimulatedSite(cfg, SimClock(NOON_JST, speed=0), auto_ev_sessions=False)
    await site.start()
    fleet = DriverFleet(cfg)
    try:
        yield site, fleet
    finally:
        await fleet.stop()
        await site.stop()


@pytest.fixture
async def homes():
    """(site, fleet) for three homes: PV and battery of a home share one port."""
    cfg = fast_config("three-homes.yaml")
    site = SimulatedSite(cfg, SimClock(NOON_JST, speed=0), auto_ev_sessions=False)
    await site.start()
    fleet = DriverFleet(cfg)
    try:
        yield site, fleet
    finally:
        await fleet.stop()
        await site.stop()
