"""Ingest benchmark: sustained points/s through TelemetryPipeline into a real influxd.

In the same run it measures the raw limit of that influxd (the same points pre-encoded as
line protocol, posted in the same batch sizes by a bare httpx client) and prints the ratio,
plus the embedded (SQLite) backend's points/s through the same pipeline.
One point = one device snapshot (5 numeric fields + quality).

    python bench/ingest.py [--points N] [--batch B] [--json]

``--json`` ends the output with one JSON line:
``{"influx_points_per_s": …, "raw_points_per_s": …, "ratio": …, "embedded_points_per_s": …}``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/ocpp.py would shadow the ocpp library
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.protocols import DeviceKind, Snapshot  # noqa: E402
from vpp.config import EmbeddedStorage, InfluxStorage  # noqa: E402
from vpp.storage import TelemetryPipeline, open_store  # noqa: E402
from vpp.storage.influxd import start_influxd  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def make_snapshots(n: int, devices: int = 2000) -> list[Snapshot]:
    """``n`` meter snapshots: ``devices`` meters polled once per second."""
    out = []
    for i in range(n):
        d, t = i % devices, i // devices
        out.append(Snapshot(f"meter{d:04d}", DeviceKind.METER, T0 + timedelta(seconds=t, microseconds=d),
                            {"power_w": 1000.0 + (i % 997) * 1.5, "import_energy_wh": 1e6 + i * 0.25,
                             "export_energy_wh": 5e5 + i * 0.125, "voltage_v": 230.0 + (i % 13) * 0.1,
                             "frequency_hz": 50.0 + (i % 7) * 0.01}))
    return out


async def through_pipeline(store, cfg, snaps, spool_dir) -> float:
    """Points/s from the first submit until every point is acknowledged by the store."""
    p = TelemetryPipeline(store, cfg, spool_dir)
    await p.start()
    t0 = time.perf_counter()
    b = cfg.batch_size
    for k in range(0, len(snaps), b):
        for s in snaps[k:k + b]:
            p.submit(s)
        await asyncio.sleep(0)
    while p.metrics["written"] + p.metrics["rejected"] < len(snaps):
        await asyncio.sleep(0.005)
    dt = time.perf_counter() - t0
    await p.stop()
    m = p.metrics
    assert m["written"] == len(snaps) and m["spooled"] == 0, m
    return len(snaps) / dt


def raw_limit(url: str, db: str, lines: list[str], batch: int) -> float:
    bodies = ["\n".join(lines[k:k + batch]).encode() for k in range(0, len(lines), batch)]
    with httpx.Client(base_url=url, timeout=30) as c:
        c.post("/query", params={"q": f'CREATE DATABASE "{db}"'})
        t0 = time.perf_counter()
        for body in bodies:
            r = c.post("/write", params={"db": db, "precision": "ns"}, content=body)
            assert r.status_code == 204, r.text
        return len(lines) / (time.perf_counter() - t0)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3, help="alternating raw/pipeline rounds; best of each")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    snaps = make_snapshots(a.points)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        tmp = Path(tmp)
        srv = start_influxd(tmp / "influx")
        try:
            raw, ours = [], []
            for r in range(a.rounds):
                cfg = InfluxStorage(backend="influxdb", url=srv.url, database=f"pipe{r}", batch_size=a.batch,
                                    flush_interval_s=0.2, queue_max=a.points + a.batch)
                store = open_store(cfg, site="bench", connect=False)
                lines = store.prepare(snaps).lines  # the same points, encoded before timing
                raw.append(raw_limit(srv.url, f"raw{r}", lines, a.batch))
                ours.append(await through_pipeline(store, cfg, snaps, tmp / f"spool{r}"))
                store.close()
                print(f"round {r + 1}: raw {raw[-1]:,.0f} points/s, pipeline {ours[-1]:,.0f} points/s "
                      f"(ratio {ours[-1] / raw[-1]:.2f})")
        finally:
            srv.stop()
        ecfg = EmbeddedStorage(path=str(tmp / "bench.sqlite"), batch_size=a.batch, flush_interval_s=0.2,
                               queue_max=a.points + a.batch)
        estore = open_store(ecfg, site="bench", connect=False)
        emb = await through_pipeline(estore, ecfg, snaps, tmp / "espool")
        estore.close()
    res = {"influx_points_per_s": round(max(ours)), "raw_points_per_s": round(max(raw)),
           "ratio": round(max(ours) / max(raw), 3), "embedded_points_per_s": round(emb)}
    print(f"influx via pipeline: {res['influx_points_per_s']:,} points/s; raw line protocol: "
          f"{res['raw_points_per_s']:,} points/s; ratio {res['ratio']:.2f} (goal >= 0.7, >= 50,000/s)")
    print(f"embedded (SQLite WAL) via pipeline: {res['embedded_points_per_s']:,} points/s")
    if a.json:
        print(json.dumps(res))


if __name__ == "__main__":
    asyncio.run(main())
