"""Storage fixtures: every contract test runs against both backends (real influxd, SQLite)."""
from __future__ import annotations

import pytest
from storage_helpers import influx_cfg

from vpp.config import EmbeddedStorage
from vpp.storage import open_store


@pytest.fixture(params=["influxdb", "embedded"])
def store_cfg(request, tmp_path):
    if request.param == "influxdb":
        srv = request.getfixturevalue("influxd")
        return influx_cfg(srv.url, spool_dir=str(tmp_path / "spool"), flush_interval_s=0.05)
    return EmbeddedStorage(path=str(tmp_path / "vpp.sqlite"), flush_interval_s=0.05)


@pytest.fixture
def store(store_cfg):
    s = open_store(store_cfg, site="town")
    yield s
    s.close()
