"""The shared test helpers: site overrides build new configs; waits end on the simulated clock."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from simulators.clock import SimClock
from tests.testkit.sites import make_site, merged, overridden, site_data
from tests.testkit.wait import wait_until, wait_until_sync


def test_overrides_merge_into_a_new_config():
    base = site_data("shelter")
    cfg = make_site("shelter", optimiser={"horizon_h": 12}, grid={"import_limit_w": 1234})
    assert cfg.optimiser.horizon_h == 12 and cfg.optimiser.slot_s == base["optimiser"]["slot_s"]
    assert cfg.grid.import_limit_w == 1234 and cfg.grid.export_limit_w == base["grid"]["export_limit_w"]
    again = overridden(cfg, each_device={"timeout_s": 0.9})
    assert again is not cfg and all(d.timeout_s == 0.9 for d in again.devices)
    assert all(d.timeout_s == 0.5 for d in cfg.devices)  # the original is untouched


def test_merged_copies_and_replaces_lists():
    base = {"a": {"b": 1, "c": [1]}, "d": [1, 2]}
    out = merged(base, {"a": {"c": [9]}, "d": [3]})
    assert out == {"a": {"b": 1, "c": [9]}, "d": [3]} and base == {"a": {"b": 1, "c": [1]}, "d": [1, 2]}


async def test_wait_until_returns_the_value_and_times_out_on_the_simulated_clock():
    assert await wait_until(lambda: 42, 1.0) == 42
    clock = SimClock(datetime(2026, 1, 1, tzinfo=timezone.utc), speed=600.0)  # 10 sim min per wall s
    # 60 simulated s at 600× end the wait long before its 60-s wall bound
    with pytest.raises(AssertionError, match="simulated clock"):
        await wait_until(lambda: False, 60.0, clock=clock, interval_s=0.01, what="never")


def test_wait_until_sync_has_a_wall_bound_for_a_stopped_clock():
    clock = SimClock(datetime(2026, 1, 1, tzinfo=timezone.utc), speed=0)
    with pytest.raises(AssertionError, match="wall clock"):
        wait_until_sync(lambda: None, 3600.0, clock=clock, interval_s=0.01, wall_timeout_s=0.1)
