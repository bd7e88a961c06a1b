"""API latency benchmark: p50/p99 of the live status and flexibility endpoints at a fixed
request rate, against a running site in a separate process on loopback, with an open-loop
load generator.

The server process is a full :class:`vpp.runtime.Runtime` on a simulated site (60×) on the
community-centre example: simulated devices on loopback Modbus, the pollers, the embedded
store, the controller with its scheduler and optimiser plans, the API on uvicorn. So
``/api/v1/status`` is the live site status (flows, battery, grid, store, alarms, decisions)
and ``/api/v1/flexibility`` goes through the controller's plan (``optimizer.flexibility``),
both while the control loop runs beside them in the same process. The run waits for the
first plan and checks that the measured flexibility window is plan-based and non-zero.

Open loop: request *i* is sent at ``t0 + i / rps`` whether or not earlier ones returned, and
its latency is measured from that scheduled time, so queueing in the server counts
(no coordinated omission). Each endpoint runs its own phase; ``/api/v1/health`` first, as
the baseline in the same run. The server's CPU time per request is printed too (it includes
the simulator and control loop running at the same time, so it is an upper bound).

Usage: ``.venv/bin/python bench/api.py [--json] [--rps 200] [--seconds 5]``.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/ocpp.py would shadow the ocpp library
sys.path.insert(0, str(ROOT))

CONFIG = ROOT / "deploy/examples/community-centre.yaml"
SPEED = 60.0


# --------------------------------------------------------------------------- server process
@contextlib.contextmanager
def served_site(data_dir: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """A full Runtime on ``data_dir`` in a child process (``bench/api.py --serve``), so the
    load generator does not share its event loop; yields its URL and the process."""
    port_file = Path(data_dir, "port")
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench/api.py"), "--serve", data_dir, str(port_file)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for _ in range(6000):
            if port_file.exists() and port_file.read_text():
                break
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port_file.read_text()}", proc
    finally:
        proc.terminate()
        proc.wait(20)


def serve(data_dir: str, port_file: str) -> None:
    """A simulated site's Runtime on a free loopback port until SIGTERM."""
    import logging

    from vpp.commands.demo import simulated_runtime
    from vpp.config import read_config

    logging.basicConfig(level=logging.ERROR)
    rt = simulated_runtime(read_config(CONFIG), speed=SPEED, data_dir=data_dir, weather="clear-sky")

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await rt.start()
        try:
            Path(port_file).write_text(str(rt.port))
            await stop.wait()
        finally:
            await rt.stop()

    asyncio.run(main())


# --------------------------------------------------------------------------- load generator
class RawHttp:
    """Minimal HTTP/1.1 keep-alive GET client on asyncio streams: a fraction of httpx's CPU
    per request, so on a shared 2-core machine the load generator is not what saturates.
    Connections are reused; a new one is opened whenever all are busy (open loop)."""

    def __init__(self, host: str, port: int, local_addr: str | None = None) -> None:
        self.host, self.port = host, port
        self.local = (local_addr, 0) if local_addr else None  # source address (e.g. 127.0.0.7)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def request(self, path: str, params: dict | None, headers: dict) -> bytes:
        from urllib.parse import urlencode

        target = path + ("?" + urlencode(params) if params else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def send(self, req: bytes) -> int:
        """Send one pre-built request; the response status. A reused connection the server
        has closed meanwhile (keep-alive timeout) is replaced once, as HTTP clients do."""
        reused = bool(self.idle)
        conn = self.idle.pop() if reused else await asyncio.open_connection(self.host, self.port, local_addr=self.local)
        reader, writer = conn
        try:
            writer.write(req)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionResetError) as e:
                if not reused or getattr(e, "partial", b""):
                    raise
                writer.close()
                reader, writer = conn = await asyncio.open_connection(self.host, self.port, local_addr=self.local)
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            low = head.lower()
            i = low.find(b"content-length:")
            n = int(low[i + 15:low.index(b"\r\n", i)]) if i >= 0 else 0
            await reader.readexactly(n)
        except BaseException:
            writer.close()
            raise
        self.idle.append(conn)
        return status

    async def close(self) -> None:
        for _, w in self.idle:
            w.close()
        self.idle.clear()


async def phase(client: RawHttp, path: str, params: dict | None, headers: dict, rps: float,
                seconds: float) -> dict:
    n = int(rps * seconds)
    req = client.request(path, params, headers)
    lat: list[float] = []
    errors: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05

    async def one(i: int) -> None:
        due = t0 + i / rps
        await asyncio.sleep(max(0.0, due - loop.time()))
        try:
            status = await client.send(req)
            why = "" if status == 200 else f"HTTP {status}"
        except Exception as e:  # noqa: BLE001 - a failed request counts as an error, not a latency
            why = type(e).__name__
        if not why:
            lat.append(loop.time() - due)
        else:
            errors[why] = errors.get(why, 0) + 1

    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = loop.time() - t0
    lat.sort()
    q = lambda p: 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")  # noqa: E731
    return {"path": path, "n": n, "errors": sum(errors.values()), "why": errors, "achieved_rps": n / elapsed,
            "p50_ms": q(0.50), "p99_ms": q(0.99)}


def cpu_s(pid: int) -> float:
    """User + system CPU time [s] of process ``pid`` (Linux /proc)."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


async def sim_now(c, h: dict) -> datetime:
    """The site's (simulated) time from the live status."""
    return datetime.fromisoformat((await c.get("/api/v1/status", headers=h)).json()["ts"])


async def wait_for_plan(c, h: dict, timeout_s: float = 90.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        r = await c.get("/api/v1/status", headers=h)
        if r.status_code == 200 and r.json()["plan"]["made_at"]:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"no plan from the running site after {timeout_s:.0f} s")


def flex_window(now: datetime) -> dict:
    """Four hours of 30-min slots from the next full hour of the site's time."""
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return {"start": start.isoformat(), "end": (start + timedelta(hours=4)).isoformat()}


def check_flexibility(slots: list[dict]) -> dict:
    """Where the measured flexibility comes from and how much there is (a zero or SoC-only
    answer would make the latency figure meaningless)."""
    up = sum(s["up_kw"] for s in slots)
    down = sum(s["down_kw"] for s in slots)
    return {"sources": sorted({s["source"] for s in slots}), "slots": len(slots),
            "up_kw_mean": up / max(len(slots), 1), "down_kw_mean": down / max(len(slots), 1),
            "unavailable": [s.get("reason") for s in slots if not s["available"]]}


async def dispatch_acks(c, agg_key: str, op_key: str, n: int = 40) -> dict:
    """Sequential ``POST /dispatches`` under one award: time to the acknowledgement [ms]
    (validation + two fsynced ledger appends). The site's operator offers (operators only),
    the aggregator awards and dispatches."""
    h = {"Authorization": f"Bearer {agg_key}"}
    now = await sim_now(c, h)
    s1 = datetime.fromtimestamp((now.timestamp() // 1800 + 2) * 1800, UTC)  # ≥ 30 sim-min ahead
    s1e = s1 + timedelta(minutes=30)
    f = (await c.get("/api/v1/flexibility", params={"start": s1.isoformat(), "end": s1e.isoformat()},
                     headers=h)).json()["slots"][0]
    direction = "up" if f["up_kw"] >= f["down_kw"] else "down"
    kw = max(f["up_kw"], f["down_kw"])
    if kw <= 0:
        raise SystemExit(f"no flexibility to award in {s1.isoformat()}: {f}")
    slot = [{"start": s1.isoformat(), "capacity_kw": kw}]
    offer = (await c.post("/api/v1/offers", json={"slots": slot, "direction": direction},
                          headers={"Authorization": f"Bearer {op_key}", "Idempotency-Key": "bench-o"})).json()
    award = (await c.post("/api/v1/awards", json={"offer_id": offer["id"], "slots": slot},
                          headers={**h, "Idempotency-Key": "bench-a"})).json()
    lat = []
    for i in range(n):
        t = time.perf_counter()
        r = await c.post("/api/v1/dispatches", headers={**h, "Idempotency-Key": f"bench-d{i}"},
                         json={"award_id": award["id"], "type": "delta", "start": s1.isoformat(),
                               "end": s1e.isoformat(), "value_kw": kw / 2})
        lat.append(1000 * (time.perf_counter() - t))
        assert r.status_code == 201 and r.json()["status"] in ("accepted", "partial"), r.text
    lat.sort()
    return {"n": n, "p50_ms": lat[n // 2], "max_ms": lat[-1]}


async def run(url: str, key: str, op_key: str, rps: float, seconds: float, pid: int
              ) -> tuple[list[dict], dict, dict]:
    import httpx

    h = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as c:
        await wait_for_plan(c, h)
        flex = flex_window(await sim_now(c, h))
        r = await c.get("/api/v1/flexibility", params=flex, headers=h)
        assert r.status_code == 200, r.text
        fcheck = check_flexibility(r.json()["slots"])
        out = []
        raw = RawHttp(c.base_url.host, c.base_url.port)
        try:
            for p, q in (("/api/v1/health", None), ("/api/v1/status", None), ("/api/v1/flexibility", flex)):
                assert await raw.send(raw.request(p, q, h)) == 200  # warm-up
                c0 = cpu_s(pid)
                r = await phase(raw, p, q, h, rps, seconds)
                r["server_cpu_ms_per_req"] = 1000 * (cpu_s(pid) - c0) / r["n"]
                out.append(r)
        finally:
            await raw.close()
        return out, await dispatch_acks(c, key, op_key), fcheck


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rps", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--serve", nargs=2, metavar=("DATADIR", "PORTFILE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        serve(*a.serve)
        return
    from vpp.api.auth import create_key

    with tempfile.TemporaryDirectory() as tmp:
        key, _ = create_key(f"{tmp}/api_keys.json", "aggregator", "bench")  # Runtime(data_dir=tmp) reads it
        op_key, _ = create_key(f"{tmp}/api_keys.json", "operator", "bench-operator")
        with served_site(tmp) as (url, proc):
            res, acks, fcheck = asyncio.run(run(url, key, op_key, a.rps, a.seconds, proc.pid))
    base = res[0]["p99_ms"]
    print(f"open-loop {a.rps:.0f} req/s for {a.seconds:.0f} s per endpoint; a simulated site's Runtime "
          f"({SPEED:g}×, {CONFIG.name}) on uvicorn in a separate process; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"flexibility window: {fcheck['slots']} slots from {', '.join(fcheck['sources'])}, mean up "
          f"{fcheck['up_kw_mean']:.1f} kW, down {fcheck['down_kw_mean']:.1f} kW"
          + (f", unavailable: {fcheck['unavailable']}" if fcheck["unavailable"] else ""))
    print(f"{'endpoint':24} {'n':>5} {'err':>4} {'rps':>7} {'p50 ms':>8} {'p99 ms':>8} {'p99/health':>10} "
          f"{'srv CPU ms/req':>14}")
    for r in res:
        print(f"{r['path']:24} {r['n']:5d} {r['errors']:4d} {r['achieved_rps']:7.1f} {r['p50_ms']:8.2f} "
              f"{r['p99_ms']:8.2f} {r['p99_ms'] / base:10.2f} {r['server_cpu_ms_per_req']:14.2f}"
              + (f"  errors: {r['why']}" if r["why"] else ""))
    print(f"dispatch acknowledgement (sequential POST, {acks['n']}): p50 {acks['p50_ms']:.1f} ms, "
          f"max {acks['max_ms']:.1f} ms (limit 1000 ms)")
    if a.json:
        print(json.dumps({"status_p99_ms": round(res[1]["p99_ms"], 2), "flexibility_p99_ms": round(res[2]["p99_ms"], 2),
                          "rps": round(min(r["achieved_rps"] for r in res), 1),
                          "health_p99_ms": round(base, 2),
                          "status_vs_health_p99": round(res[1]["p99_ms"] / base, 2),
                          "flexibility_vs_health_p99": round(res[2]["p99_ms"] / base, 2),
                          "status_cpu_ms": round(res[1]["server_cpu_ms_per_req"], 2),
                          "flexibility_cpu_ms": round(res[2]["server_cpu_ms_per_req"], 2),
                          "errors": sum(r["errors"] for r in res),
                          "flexibility_source": ",".join(fcheck["sources"]),
                          "flexibility_up_kw_mean": round(fcheck["up_kw_mean"], 1),
                          "flexibility_down_kw_mean": round(fcheck["down_kw_mean"], 1),
                          "dispatch_ack_max_ms": round(acks["max_ms"], 1),
                          "load_avg_1m": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
