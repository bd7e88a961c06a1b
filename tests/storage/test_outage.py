"""Store outages: influxd stopped and restarted, and a SIGKILLed process with a full spool."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.testkit.wait import wait_until
from storage_helpers import influx_cfg, snap

from vpp.storage import TelemetryPipeline, open_store
from vpp.storage.influxd import free_port, start_influxd

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def own_influxd(tmp_path):
    srv = start_influxd(tmp_path / "influx")
    yield srv
    srv.stop()


async def _wait(pred, timeout=15.0):
    return await wait_until(pred, timeout, interval_s=0.02)


async def test_store_down_then_back_every_point_exactly_once(own_influxd, tmp_path):
    cfg = influx_cfg(own_influxd.url, flush_interval_s=0.05, batch_size=40, timeout_s=1.0)
    store = open_store(cfg, site="town", connect=False)
    p = TelemetryPipeline(store, cfg, tmp_path / "spool")
    await p.start()
    n_before, n_down, n_after = 100, 300, 100
    for i in range(n_before):
        p.submit(snap("m1", "meter", i, power_w=float(i)))
    assert await p.flushed(10)
    own_influxd.stop()
    for i in range(n_before, n_before + n_down):
        p.submit(snap("m1", "meter", i, power_w=float(i)))
        if i % 50 == 0:
            await asyncio.sleep(0.03)
    assert await _wait(lambda: p.metrics["spooled"] >= n_down - 40 and not p.metrics["queued"])
    assert p.metrics["store_up"] is False and p.spool.bytes > 0
    own_influxd.start()
    for i in range(n_before + n_down, n_before + n_down + n_after):
        p.submit(snap("m1", "meter", i, power_w=float(i)))
    assert await p.flushed(20)
    await p.stop()
    m = p.metrics
    total = n_before + n_down + n_after
    assert m["store_up"] and m["spool_bytes"] == 0 and m["dropped"] == 0
    assert m["replayed"] == m["spooled"] >= n_down - 40
    assert m["written"] == total
    assert store.count(device="m1") == total
    df = store.raw("m1", ["power_w"], snap("m1", "meter", 0).ts, snap("m1", "meter", total).ts)
    assert df["power_w"].tolist() == [float(i) for i in range(total)]
    store.close()


CHILD = textwrap.dedent("""
    import asyncio, sys
    sys.path.insert(0, {tests!r})
    from storage_helpers import snap
    from vpp.config import InfluxStorage
    from vpp.storage import TelemetryPipeline, open_store

    async def main():
        cfg = InfluxStorage(backend="influxdb", url={url!r}, database="crash", batch_size=100,
                            flush_interval_s=0.05, timeout_s=1.0)
        p = TelemetryPipeline(open_store(cfg, site="town", connect=False), cfg, {spool!r})
        await p.start()
        for i in range({n}):
            p.submit(snap("bat1", "battery", i, soc=0.5, power_w=float(i)))
        while p.metrics["spooled"] < {n}:
            await asyncio.sleep(0.02)
        print("SPOOLED", p.metrics["spooled"], flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
""")


async def test_sigkill_with_points_in_spool_replays_on_restart(own_influxd, tmp_path):
    n, spool = 1000, tmp_path / "spool"
    dead_url = f"http://127.0.0.1:{free_port()}"  # nothing listens: the store is down
    code = CHILD.format(tests=str(Path(__file__).parent), url=dead_url, spool=str(spool), n=n)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)
        assert line.split() == [b"SPOOLED", str(n).encode()]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert list(spool.glob("*.seg"))

    cfg = influx_cfg(own_influxd.url, flush_interval_s=0.05).model_copy(update={"database": "crash"})
    store = open_store(cfg, site="town", connect=False)
    p = TelemetryPipeline(store, cfg, spool)
    await p.start()
    assert await p.flushed(20)
    await p.stop()
    assert p.metrics["replayed"] == n
    assert store.count(device="bat1") == n
    assert not list(spool.glob("*.seg"))
    # a second replay of the same data (crash after write, before delete) changes nothing
    store.write([snap("bat1", "battery", i, soc=0.5, power_w=float(i)) for i in range(n)])
    assert store.count(device="bat1") == n
    store.close()


async def test_store_down_at_start_is_opened_when_it_answers(own_influxd, tmp_path):
    own_influxd.stop()
    cfg = influx_cfg(own_influxd.url, flush_interval_s=0.05, timeout_s=1.0)
    store = open_store(cfg, site="town", connect=False)
    p = TelemetryPipeline(store, cfg, tmp_path / "spool")
    await p.start()  # not an error: spools until the store answers
    for i in range(50):
        p.submit(snap("pv1", "pv", i, power_w=float(i)))
    assert await _wait(lambda: p.metrics["spooled"] == 50)
    assert p.metrics["store_up"] is False
    own_influxd.start()
    assert await p.flushed(20)  # database created on open, then the spool replayed
    await p.stop()
    assert p.metrics["replayed"] == 50 and store.count(device="pv1") == 50
    store.close()
