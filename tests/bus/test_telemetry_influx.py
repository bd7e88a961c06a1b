"""Telemetry from the bus into a real InfluxDB (Debian influxd 1.x), partitioned by town (the
``site`` tag), through an InfluxDB outage without loss."""
from __future__ import annotations

import asyncio

from tests.bus.harness import outbox_ids, start_agent, step
from tests.testkit.wait import wait_until
from vpp.bus.client import Bus
from vpp.bus.telemetry import influx_store_per_town
from vpp.central.service import telemetry_sink
from vpp.config import InfluxStorage
from vpp.edge.home_physics import HomesTown
from vpp.storage.influxd import start_influxd

HOMES = 5


async def test_sink_writes_each_town_under_its_site_tag_and_survives_an_influxd_outage(nats_server, clock, tmp_path):
    influxd = start_influxd(tmp_path / "influx")
    towns = [HomesTown(f"t{i}", HOMES, clock, seed=i) for i in range(2)]
    agents = [await start_agent(t, nats_server.url, tmp_path) for t in towns]
    bus = await Bus(nats_server.url, "sink", ack_wait_s=2.0).connect(10)
    cfg = InfluxStorage(backend="influxdb", url=influxd.url, database="bus_towns", timeout_s=2.0)
    sink = telemetry_sink(bus, tmp_path / "sink", influx_store_per_town(cfg))
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    try:
        await step(towns, clock, 3)
        await wait_until(lambda: sink.messages >= 2, 20, what="first telemetry stored")
        influxd.stop()  # InfluxDB down: messages stay on the bus
        await step(towns, clock, 4)
        await wait_until(lambda: bus.handler_failures > 0, 20, what="the sink meeting the outage")
        influxd.start()
        await step(towns, clock, 3)
        for a in agents:
            a.flush_telemetry()
        produced = set().union(*(outbox_ids(a.state_dir, "telemetry") for a in agents))
        await wait_until(lambda: {i for i, _, _ in sink.inbox.outcomes(kind="telemetry")} >= produced, 60,
                         what="every message stored after the outage")
        res = influxd.query('SELECT count("soc") FROM "battery" GROUP BY "site"', db="bus_towns")
        counts = {s["tags"]["site"]: s["values"][0][1] for s in res["results"][0]["series"]}
        assert counts == {"t0": 10 * HOMES, "t1": 10 * HOMES}  # every step of every home, once, per town
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for a in agents:
            await a.stop()
        sink.close()
        await bus.close()
        influxd.stop()
