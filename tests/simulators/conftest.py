"""Fixtures for simulator tests: small site configs and a manual clock at a fixed time."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from simulators.clock import SimClock
from tests.testkit.sites import make_site, site_data
from vpp.config import SiteConfig

#: 2026-06-22 (a Monday) 12:00 JST — PV near its daily peak in Sendai.
NOON_JST = datetime(2026, 6, 22, 3, 0, tzinfo=timezone.utc)


def site_config(port: int = 15020) -> SiteConfig:
    """One of each device kind; pv and battery share ``port`` (device ids 1 and 2), the meter
    is on ``port + 1``, the EV charger on ``port + 2``."""
    raw = site_data("one-of-each")
    shift = port - 15020  # the YAML's ports start at 15020
    devices = [{**d, "connection": {**d["connection"], "port": d["connection"]["port"] + shift}}
               for d in raw["devices"]]
    return make_site("one-of-each", devices=devices)


@pytest.fixture
def config() -> SiteConfig:
    return site_config()


@pytest.fixture
def make_config():
    """``make_config(port=...)`` builds :func:`site_config` (for per-test port choices)."""
    return site_config


@pytest.fixture
def clock() -> SimClock:
    return SimClock(NOON_JST, speed=0)
