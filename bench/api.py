"""API latency benchmark: p50/p99 of the status and flexibility endpoints at a fixed request
rate, against uvicorn in a separate process on loopback, with an open-loop load generator.

The server process runs the real app with a real controller holding a real optimiser plan
(so ``/flexibility`` goes through ``optimizer.flexibility``), a SQLite ledger and a scrypt
key file. ``/api/v1/status`` needs the full runtime (pollers, scheduler; 503 without), so
"status" here is ``/api/v1/resources`` (site capabilities, SoC above the floor).

Open loop: request *i* is sent at ``t0 + i / rps`` whether or not earlier ones returned, and
its latency is measured from that scheduled time, so queueing in the server counts
(no coordinated omission). Each endpoint runs its own phase; ``/api/v1/health`` first, as
the baseline in the same run. The server's CPU time per request is printed too: it does not
depend on what else the (shared) machine is doing, the latencies do.

Usage: ``.venv/bin/python bench/api.py [--json] [--rps 200] [--seconds 5]``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIG = {
    "site": {"name": "bench-town", "latitude": 38.33, "longitude": 140.85, "timezone": "Asia/Tokyo"},
    "grid": {"import_limit_w": 80_000, "export_limit_w": 40_000},
    "tariff": {"periods": [{"name": "flat", "start": "00:00", "end": "00:00", "buy_per_kwh": 30}]},
    "devices": [{"id": f"bat{i}", "kind": "battery", "register_map": "sunspec_storage",
                 "ratings": {"capacity_wh": 20_000, "max_charge_w": 10_000, "max_discharge_w": 10_000}}
                for i in range(1, 5)],
    "reserve": {"floor_pct": 30},
    "optimiser": {"horizon_h": 24, "slot_s": 1800, "time_limit_s": 10, "stale_plan_s": 7200},
}


# --------------------------------------------------------------------------- server process
def serve(cfg_path: str, port_file: str) -> None:
    import uvicorn

    from drivers.protocols import DeviceKind, Quality, Snapshot
    from vpp.api.app import SiteServices, create_app
    from vpp.api.server import bind_socket
    from vpp.config import parse_config
    from vpp.control.loop import Controller, Plan

    cfg = parse_config(json.loads(Path(cfg_path).read_text()))

    class Fleet:  # fresh SoC readings for the controller (no devices in this process)
        def latest(self, device_id):
            return Snapshot(device_id, DeviceKind("battery"), datetime.now(UTC), {"soc": 0.6, "power_w": 0.0}, Quality.GOOD, "")

        def device(self, device_id):
            raise RuntimeError("read-only benchmark")

    ctl = Controller(cfg, fleet=Fleet())
    now = ctl.now()
    fc = ctl.forecast_job()
    problem = ctl.build_problem(now, fc, {b.id: 0.6 for b in ctl.batteries})
    ctl.plan = Plan(ctl.solve(problem), now, problem)
    app = create_app(cfg, SiteServices(controller=ctl))
    sock = bind_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))

    async def main():
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.02)
        Path(port_file).write_text(str(sock.getsockname()[1]))
        await task

    asyncio.run(main())


# --------------------------------------------------------------------------- load generator
async def phase(client, path: str, params: dict | None, headers: dict, rps: float, seconds: float) -> dict:
    n = int(rps * seconds)
    lat: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05

    async def one(i: int) -> None:
        nonlocal errors
        due = t0 + i / rps
        await asyncio.sleep(max(0.0, due - loop.time()))
        try:
            r = await client.get(path, params=params, headers=headers)
            ok = r.status_code == 200
        except Exception:  # noqa: BLE001 - a failed request counts as an error, not a latency
            ok = False
        if ok:
            lat.append(loop.time() - due)
        else:
            errors += 1

    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = loop.time() - t0
    lat.sort()
    q = lambda p: 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")  # noqa: E731
    return {"path": path, "n": n, "errors": errors, "achieved_rps": n / elapsed, "p50_ms": q(0.50), "p99_ms": q(0.99)}


def cpu_s(pid: int) -> float:
    """User + system CPU time [s] of process ``pid`` (Linux /proc)."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


async def dispatch_acks(c, op_key: str, agg_key: str, n: int = 40) -> dict:
    """Sequential ``POST /dispatches`` under one award: time to the acknowledgement [ms]
    (validation + two fsynced ledger appends)."""
    s1 = datetime.fromtimestamp((datetime.now(UTC).timestamp() // 1800 + 2) * 1800, UTC)
    f = (await c.get("/api/v1/flexibility", params={"start": s1.isoformat(), "end": (s1 + timedelta(minutes=30)).isoformat()},
                     headers={"Authorization": f"Bearer {agg_key}"})).json()["slots"][0]
    direction = "up" if f["up_kw"] >= f["down_kw"] else "down"
    kw = max(f["up_kw"], f["down_kw"])
    slot = [{"start": s1.isoformat(), "capacity_kw": kw}]
    offer = (await c.post("/api/v1/offers", json={"slots": slot, "direction": direction},
                          headers={"Authorization": f"Bearer {op_key}", "Idempotency-Key": "bench-o"})).json()
    award = (await c.post("/api/v1/awards", json={"offer_id": offer["id"], "slots": slot},
                          headers={"Authorization": f"Bearer {agg_key}", "Idempotency-Key": "bench-a"})).json()
    lat = []
    for i in range(n):
        t = time.perf_counter()
        r = await c.post("/api/v1/dispatches", headers={"Authorization": f"Bearer {agg_key}",
                                                         "Idempotency-Key": f"bench-d{i}"},
                         json={"award_id": award["id"], "type": "delta", "start": s1.isoformat(),
                               "end": (s1 + timedelta(minutes=30)).isoformat(), "value_kw": kw / 2})
        lat.append(1000 * (time.perf_counter() - t))
        assert r.status_code == 201 and r.json()["status"] in ("accepted", "partial"), r.text
    lat.sort()
    return {"n": n, "p50_ms": lat[n // 2], "max_ms": lat[-1]}


async def run(url: str, key: str, rps: float, seconds: float, pid: int, op_key: str) -> tuple[list[dict], dict]:
    import httpx

    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    flex = {"start": start.isoformat(), "end": (start + timedelta(hours=4)).isoformat()}
    h = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as c:
        for p, q in (("/api/v1/health", None), ("/api/v1/resources", None), ("/api/v1/flexibility", flex)):
            assert (await c.get(p, params=q, headers=h)).status_code == 200  # warm-up (scrypt once)
        out = []
        for p, q in (("/api/v1/health", None), ("/api/v1/resources", None), ("/api/v1/flexibility", flex)):
            c0 = cpu_s(pid)
            r = await phase(c, p, q, h, rps, seconds)
            r["server_cpu_ms_per_req"] = 1000 * (cpu_s(pid) - c0) / r["n"]
            out.append(r)
        return out, await dispatch_acks(c, op_key, key)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rps", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--serve", nargs=2, metavar=("CONFIG", "PORTFILE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        serve(*a.serve)
        return
    from vpp.api.auth import create_key

    with tempfile.TemporaryDirectory() as tmp:
        cfg = dict(CONFIG, api={"keys_path": f"{tmp}/keys.json", "ledger_path": f"{tmp}/ledger.sqlite"})
        Path(tmp, "cfg.json").write_text(json.dumps(cfg))
        key, _ = create_key(f"{tmp}/keys.json", "aggregator", "bench")
        op_key, _ = create_key(f"{tmp}/keys.json", "operator", "bench-op")
        port_file = Path(tmp, "port")
        proc = subprocess.Popen([sys.executable, __file__, "--serve", f"{tmp}/cfg.json", str(port_file)],
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            for _ in range(3000):
                if port_file.exists() and port_file.read_text():
                    break
                if proc.poll() is not None:
                    raise SystemExit(f"server exited with {proc.returncode}")
                time.sleep(0.01)
            url = f"http://127.0.0.1:{port_file.read_text()}"
            res, acks = asyncio.run(run(url, key, a.rps, a.seconds, proc.pid, op_key))
        finally:
            proc.terminate()
            proc.wait(10)
    base = res[0]["p99_ms"]
    print(f"open-loop {a.rps:.0f} req/s for {a.seconds:.0f} s per endpoint, uvicorn in a separate process")
    print(f"{'endpoint':24} {'n':>5} {'err':>4} {'rps':>7} {'p50 ms':>8} {'p99 ms':>8} {'p99/health':>10} "
          f"{'srv CPU ms/req':>14}")
    for r in res:
        print(f"{r['path']:24} {r['n']:5d} {r['errors']:4d} {r['achieved_rps']:7.1f} {r['p50_ms']:8.2f} "
              f"{r['p99_ms']:8.2f} {r['p99_ms'] / base:10.2f} {r['server_cpu_ms_per_req']:14.2f}")
    print(f"dispatch acknowledgement (sequential POST, {acks['n']}): p50 {acks['p50_ms']:.1f} ms, "
          f"max {acks['max_ms']:.1f} ms (limit 1000 ms)")
    if a.json:
        print(json.dumps({"status_p99_ms": round(res[1]["p99_ms"], 2), "flexibility_p99_ms": round(res[2]["p99_ms"], 2),
                          "rps": round(min(r["achieved_rps"] for r in res), 1),
                          "status_cpu_ms": round(res[1]["server_cpu_ms_per_req"], 2),
                          "flexibility_cpu_ms": round(res[2]["server_cpu_ms_per_req"], 2),
                          "health_p99_ms": round(base, 2),
                          "dispatch_ack_max_ms": round(acks["max_ms"], 1)}))


if __name__ == "__main__":
    main()
