"""Shared test harness: test tiers, and a real Debian ``influxd`` (1.x) on free loopback ports.

Tiers (pytest markers, registered in ``pyproject.toml``) are applied here at collection, so a
new test lands in the right tier without remembering to mark it:

``influx``
    uses the ``influxd`` fixture (directly, through another fixture, or as the ``influxdb``
    parameter of a backend-parametrised fixture).
``runtime``
    starts the service: uses a fixture marked ``@tier("runtime")``, or its module builds a
    ``Runtime``, serves with uvicorn or spawns ``vpp demo`` / the API child, or the test runs
    ``vpp run``'s ``serve(config, …)``.
``browser``
    drives Chromium: uses a fixture marked ``@tier("browser")`` or its module uses Playwright.
``scenario``
    runs a whole scenario (simulated hours of the site); a closed loop over a simulated day
    outside ``simulators.scenarios`` is marked by hand.
``slow``
    marked by hand: long integration tests.

``make test-fast`` deselects all of these; ``make test`` runs everything. Only the session-wide
real-InfluxDB fixture lives here; each area keeps its own fixtures in its own ``conftest.py``.
There is no fake InfluxDB anywhere in the suite. If ``/usr/bin/influxd`` is missing the fixture
fails (``make test`` installs it).
"""
from __future__ import annotations

import inspect
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.testkit.tiers import tier
from vpp.storage.influxd import InfluxServer, free_port, start_influxd  # noqa: F401

#: What in a test module's source puts all its tests in a tier (for servers a test starts
#: inline rather than through a fixture).
_SOURCE_TIERS = {
    "runtime": re.compile(r"\bRuntime\(|\bsimulated_runtime\(|\bstart_site\(|\buvicorn\b|serve_child|[\"']demo[\"']"),
    "browser": re.compile(r"\bplaywright\b|--png\b"),
    "scenario": re.compile(r"\brun_scenario\(|\brun_cached\(|\brun_town\("),
    "influx": re.compile(r"\binfluxd\b"),
}
#: The same for one test function's own source (``serve(``: ``vpp run``'s service in real time).
_FUNCTION_TIERS = {
    "runtime": re.compile(r"\bserve\(config"),
}


def _fixture_tiers(item) -> set[str]:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return set()
    tiers = set()
    for name in item.fixturenames:
        for fdef in info.name2fixturedefs.get(name, ()):
            t = getattr(fdef.func, "__test_tier__", None)
            if t:
                tiers.add(t)
    if "influxd" in item.fixturenames:
        tiers.add("influx")
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "influxdb" in callspec.params.values():
        tiers.add("influx")
    return tiers


_module_cache: dict[str, set[str]] = {}


def _source_tiers(item) -> set[str]:
    module = getattr(item, "module", None)
    if module is None:
        return set()
    key = module.__name__
    if key not in _module_cache:
        try:
            src = inspect.getsource(module)
        except (OSError, TypeError):
            src = ""
        _module_cache[key] = {t for t, rx in _SOURCE_TIERS.items() if rx.search(src)}
    tiers = set(_module_cache[key])
    fn = getattr(item, "function", None)
    if fn is not None:
        try:
            src = inspect.getsource(fn)
        except (OSError, TypeError):
            src = ""
        tiers |= {t for t, rx in _FUNCTION_TIERS.items() if rx.search(src)}
    return tiers


#: Folders whose every test is in a tier (a running site per test module).
_PATH_TIERS = {"runtime": "/tests/runtime/"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = str(getattr(item, "path", ""))
        by_path = {t for t, part in _PATH_TIERS.items() if part in path}
        for t in sorted(_fixture_tiers(item) | _source_tiers(item) | by_path):
            item.add_marker(getattr(pytest.mark, t))


@pytest.fixture(scope="session")
@tier("influx")
def influxd():
    """A real influxd for the whole session; ``.url``, ``.stop()``, ``.start()``."""
    root = Path(tempfile.mkdtemp(prefix="influxd-"))
    srv = start_influxd(root)
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(root, ignore_errors=True)
