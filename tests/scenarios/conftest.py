"""Scenario runs are shared between tests of one module (each run is seconds of CPU)."""
from __future__ import annotations

import asyncio

from simulators.scenarios.runner import run_scenario
from simulators.scenarios.spec import read_scenario

_CACHE: dict[tuple, object] = {}


def run_cached(name: str, hours: float | None = None, **kw):
    """Run a shipped scenario once per test session (keyed by name and hours)."""
    key = (name, hours, tuple(sorted(kw.items())))
    if key not in _CACHE:
        _CACHE[key] = asyncio.run(run_scenario(read_scenario(name), hours=hours, **kw))
    return _CACHE[key]
