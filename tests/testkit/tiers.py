"""Test tiers: the markers ``make test-fast`` leaves out, and a decorator that puts every test
using a fixture into one of them (``tests/conftest.py`` applies it at collection)."""
from __future__ import annotations

#: The tiers that start servers or run long (``slow`` is marked by hand).
SERVER_TIERS = ("browser", "influx", "runtime", "scenario")


def tier(name: str):
    """Decorator for a fixture: every test that uses it (even indirectly) is in tier ``name``."""
    assert name in SERVER_TIERS, name

    def mark(fn):
        fn.__test_tier__ = name
        return fn
    return mark
