"""Fixtures for simulator tests: small site configs and a manual clock at a fixed time."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from simulators.clock import SimClock
from vpp.config import SiteConfig, parse_config

#: 2026-06-22 (a Monday) 12:00 JST — PV near its daily peak in Sendai.
NOON_JST = datetime(2026, 6, 22, 3, 0, tzinfo=timezone.utc)


def site_config(port: int = 15020) -> SiteConfig:
    """One of each device kind; pv and battery share one port (device ids 1 and 2)."""
    return parse_config({
        "site": {"name": "test", "latitude": 38.27, "longitude": 140.87, "altitude": 40},
        "grid": {"import_limit_w": 20000, "export_limit_w": 10000},
        "tariff": {"periods": [{"name": "flat", "start": "00:00", "end": "00:00",
                                "buy_per_kwh": 30}]},
        "devices": [
            {"id": "pv1", "kind": "pv", "register_map": "sunspec_inverter",
             "connection": {"port": port, "device_id": 1}, "ratings": {"power_w": 5000}},
            {"id": "bat1", "kind": "battery", "register_map": "sunspec_storage",
             "connection": {"port": port, "device_id": 2},
             "ratings": {"capacity_wh": 10000, "max_charge_w": 4000, "max_discharge_w": 4000,
                         "soc_min": 0.1, "soc_max": 0.9}},
            {"id": "meter1", "kind": "meter", "role": "grid", "register_map": "sdm630",
             "connection": {"port": port + 1, "device_id": 1}},
            {"id": "ev1", "kind": "ev_charger", "register_map": "evse_phoenix",
             "connection": {"port": port + 2, "device_id": 180},
             "ratings": {"power_w": 7400, "min_current_a": 6, "max_current_a": 32}},
        ],
        "pv_arrays": [{"id": "roof", "inverter": "pv1", "kwp": 5.5, "tilt": 25, "azimuth": 180}],
    })


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
