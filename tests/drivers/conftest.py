"""Fixtures: a simulated site (real Modbus TCP on free loopback ports) and a fleet polling it."""
from __future__ import annotations

import pytest

from drivers.fleet import DriverFleet
from simulators.clock import SimClock
from simulators.site import SimulatedSite

from driver_helpers import NOON_JST, fast_config


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
