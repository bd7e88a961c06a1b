"""Shared test harness: a real Debian ``influxd`` (1.x) on free loopback ports.

Only the session-wide real-InfluxDB fixture lives here; each area keeps its own fixtures in
its own ``conftest.py``. There is no fake InfluxDB anywhere in the suite. If
``/usr/bin/influxd`` is missing the fixture fails (``make test`` installs it).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from vpp.storage.influxd import InfluxServer, free_port, start_influxd  # noqa: F401


@pytest.fixture(scope="session")
def influxd():
    """A real influxd for the whole session; ``.url``, ``.stop()``, ``.start()``."""
    root = Path(tempfile.mkdtemp(prefix="influxd-"))
    srv = start_influxd(root)
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(root, ignore_errors=True)
