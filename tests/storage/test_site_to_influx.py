"""End to end: simulated site → Modbus TCP → DriverFleet → TelemetryPipeline → real influxd.

influxd is stopped mid-run and restarted; every polled reading must end up in InfluxDB
exactly once (same set of (device, timestamp) as was submitted, no more, no fewer).
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from storage_helpers import influx_cfg

from drivers.fleet import DriverFleet
from simulators.clock import SimClock
from simulators.site import SimulatedSite, with_free_ports
from tests.testkit.sites import overridden
from tests.testkit.wait import wait_until
from vpp.config import read_config
from vpp.storage import TelemetryPipeline, open_store
from vpp.storage.base import ts_ns
from vpp.storage.influxd import start_influxd

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "community-centre.yaml"
NOON_JST = datetime(2026, 6, 20, 3, 0, tzinfo=timezone.utc)


@pytest.mark.slow
async def test_every_polled_reading_lands_once_across_an_outage(tmp_path):
    srv = start_influxd(tmp_path / "influx")
    cfg = overridden(with_free_ports(read_config(EXAMPLE)),
                     each_device={"poll_interval_s": 0.2, "timeout_s": 0.5, "retries": 0})
    site = SimulatedSite(cfg, SimClock(NOON_JST, speed=60), auto_ev_sessions=False)  # 1 s = 1 sim min
    scfg = influx_cfg(srv.url, flush_interval_s=0.1, timeout_s=1.0)
    store = open_store(scfg, site=cfg.site.name, connect=False)
    pipeline = TelemetryPipeline(store, scfg, tmp_path / "spool")
    submitted = []

    def on_snapshot(s):
        submitted.append(s)
        pipeline.submit(s)

    fleet = DriverFleet(cfg)
    try:
        await site.start()
        await pipeline.start()
        await fleet.start(on_snapshot=on_snapshot)
        def m():
            return pipeline.metrics  # a new dict per call

        await wait_until(lambda: m()["written"] > 0 and len(submitted) > 20, 30.0, what="readings in the store")
        srv.stop()                                   # outage
        await wait_until(lambda: m()["store_up"] is False and m()["spooled"] > 0 and len(submitted) > 45, 30.0,
                         what="readings spooled during the outage")
        srv.start()
        await wait_until(lambda: m()["store_up"] and len(submitted) > 7 * 10 + 10, 30.0,
                         what="the store back and readings after the outage")
        await fleet.stop()
        assert await pipeline.flushed(20)
        await pipeline.stop()
    finally:
        await fleet.stop()
        await site.stop()
    try:
        m = pipeline.metrics
        assert m["dropped"] == 0 and m["spool_bytes"] == 0 and m["replayed"] > 0
        want = Counter((s.device, ts_ns(s.ts)) for s in submitted)
        assert len(want) == len(submitted) > 7 * 10    # timestamps are unique per device
        res = srv.query('SELECT "device", "quality" FROM "pv","battery","ev_charger","meter"', scfg.database)
        got = Counter((row[1], row[0]) for s in res["results"][0]["series"] for row in s["values"])
        assert got == want
        good = [s for s in submitted if s.device == "pv1" and s.values]
        assert store.latest("pv1")["pv1"].values == good[-1].values
    finally:
        store.close()
        srv.stop()
