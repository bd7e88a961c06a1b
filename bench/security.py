"""Wrong-key flood benchmark: does an unauthenticated flood slow a valid caller or the control loop?

A full running site (the community-centre example's :class:`vpp.runtime.Runtime` at 60× on a
simulated site, the API on uvicorn: started like ``bench/api.py``, in a child process) is
polled by a valid caller on ``/api/v1/status`` (open loop, ``--poll-rps``), first quietly,
then while another process floods ``/api/v1/status`` on loopback with wrong keys
(``--flood-rps``, open loop, a fresh key per request so nothing can be cached). Reported:
the valid caller's p95 latency quiet and under flood (same run), their ratio, the flood
rate actually answered, the status codes the flood got, and the largest
``newest_reading_age_s`` the valid caller saw under flood (device readings keep arriving).

``--sources N`` spreads the flood over N loopback source addresses (per-address backoff then
helps less; the bound on concurrent key derivations is what remains).

Usage: ``.venv/bin/python bench/security.py [--json] [--flood-rps 250] [--seconds 8] [--sources 1]``.
Logs go to stderr; with ``--json`` the last stdout line is
``{"flood_rps", "status_p95_quiet_ms", "status_p95_flood_ms", "reading_age_max_s", ...}``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/ocpp.py would shadow the ocpp library
sys.path.insert(0, str(ROOT))

from bench.api import RawHttp, serve, served_site, wait_for_plan  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- flooder process
async def flood(url: str, rps: float, seconds: float, sources: int = 1) -> dict:
    """Open-loop GETs of ``/api/v1/status`` with wrong keys at ``rps`` for ``seconds`` from
    ``sources`` loopback addresses (127.0.0.1, .2, …; round robin); status counts and the
    rate answered."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    clients = [RawHttp(u.hostname, u.port, f"127.0.0.{1 + i}" if sources > 1 else None) for i in range(sources)]
    n = int(rps * seconds)
    statuses: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05
    sem = asyncio.Semaphore(256)  # open connections at most

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, t0 + i / rps - loop.time()))
        client = clients[i % sources]
        req = client.request("/api/v1/status", None,
                             {"Authorization": f"Bearer vpp_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"})
        async with sem:
            try:
                k = str(await client.send(req))
            except Exception as e:  # noqa: BLE001 - counted, not fatal
                k = type(e).__name__
        statuses[k] = statuses.get(k, 0) + 1

    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = loop.time() - t0
    for c in clients:
        await c.close()
    answered = sum(v for k, v in statuses.items() if k.isdigit())
    return {"offered": n, "answered": answered, "seconds": elapsed, "answered_rps": answered / elapsed,
            "statuses": statuses}


def start_flood(url: str, rps: float, seconds: float, sources: int = 1) -> subprocess.Popen:
    """The flooder in its own process (stdout: one JSON line when done)."""
    return subprocess.Popen([sys.executable, __file__, "--flood", url, str(rps), str(seconds), str(sources)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


# --------------------------------------------------------------------------- valid caller
async def poll_status(c, key: str, rps: float, seconds: float) -> dict:
    """Open-loop GETs of ``/api/v1/status`` with a valid key: latency [ms] from the scheduled
    time, and the reading ages the answers report [s]."""
    loop = asyncio.get_running_loop()
    n = int(rps * seconds)
    lat: list[float] = []
    ages: list[float] = []
    errors: dict[str, int] = {}
    t0 = loop.time() + 0.05
    h = {"Authorization": f"Bearer {key}"}

    async def one(i: int) -> None:
        due = t0 + i / rps
        await asyncio.sleep(max(0.0, due - loop.time()))
        try:
            r = await c.get("/api/v1/status", headers=h)
        except Exception as e:  # noqa: BLE001
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
            return
        if r.status_code != 200:
            errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
            return
        lat.append(1000 * (loop.time() - due))
        age = r.json().get("newest_reading_age_s")
        if age is not None:
            ages.append(float(age))

    await asyncio.gather(*(one(i) for i in range(n)))
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")  # noqa: E731
    return {"n": n, "ok": len(lat), "errors": errors, "p50_ms": q(0.5), "p95_ms": q(0.95), "max_ms": q(1.0),
            "age_max_s": max(ages) if ages else float("nan")}


async def run(url: str, key: str, a: argparse.Namespace) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as c:
        await wait_for_plan(c, {"Authorization": f"Bearer {key}"})
        await poll_status(c, key, a.poll_rps, 1.0)  # warm-up (the key is verified once)
        log(f"quiet: polling /api/v1/status at {a.poll_rps:g} req/s for {a.seconds:g} s")
        quiet = await poll_status(c, key, a.poll_rps, a.seconds)
        log(f"flood: {a.flood_rps:g} wrong-key req/s from another process ({a.sources} source addresses), "
            "polling again")
        proc = start_flood(url, a.flood_rps, a.seconds + 2.0, a.sources)
        await asyncio.sleep(1.0)  # the flood is on
        flooded = await poll_status(c, key, a.poll_rps, a.seconds)
        out, _ = await asyncio.to_thread(proc.communicate, None, 60)
        fl = json.loads(out.strip().splitlines()[-1])
    return {"quiet": quiet, "flood": flooded, "flooder": fl}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--flood-rps", type=float, default=250.0)
    ap.add_argument("--poll-rps", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--sources", type=int, default=1, help="flood from this many loopback addresses (≤ 250)")
    ap.add_argument("--serve", nargs=2, metavar=("DATADIR", "PORTFILE"), help=argparse.SUPPRESS)
    ap.add_argument("--flood", nargs=4, metavar=("URL", "RPS", "SECONDS", "SOURCES"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        serve(*a.serve)
        return
    if a.flood:
        print(json.dumps(asyncio.run(flood(a.flood[0], float(a.flood[1]), float(a.flood[2]), int(a.flood[3])))))
        return
    from vpp.api.auth import create_key

    with tempfile.TemporaryDirectory() as tmp:
        key, _ = create_key(f"{tmp}/api_keys.json", "viewer", "bench-viewer")  # Runtime(data_dir=tmp) reads it
        with served_site(tmp) as (url, _):
            res = asyncio.run(run(url, key, a))
    q, f, fl = res["quiet"], res["flood"], res["flooder"]
    log(f"a simulated site's Runtime (60×, community-centre) on uvicorn in a separate process; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    log(f"flooder: offered {fl['offered']} wrong-key requests in {fl['seconds']:.1f} s, answered "
        f"{fl['answered_rps']:.0f}/s, statuses {fl['statuses']}")
    log(f"{'phase':8} {'n':>4} {'ok':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'age max s':>9}")
    for name, r in (("quiet", q), ("flood", f)):
        log(f"{name:8} {r['n']:4d} {r['ok']:4d} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['max_ms']:8.1f} "
            f"{r['age_max_s']:9.2f}" + (f"  errors {r['errors']}" if r["errors"] else ""))
    log(f"p95 flood / quiet: {f['p95_ms'] / q['p95_ms']:.2f}")
    summary = {"flood_rps": round(fl["answered_rps"], 1), "status_p95_quiet_ms": round(q["p95_ms"], 2),
               "status_p95_flood_ms": round(f["p95_ms"], 2), "reading_age_max_s": round(f["age_max_s"], 2),
               "p95_ratio": round(f["p95_ms"] / q["p95_ms"], 2), "reading_age_max_quiet_s": round(q["age_max_s"], 2),
               "flood_sources": a.sources, "flood_statuses": fl["statuses"], "valid_errors": sum(f["errors"].values()),
               "load_avg_1m": round(os.getloadavg()[0], 2)}
    if a.json:
        print(json.dumps(summary))
    else:
        print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
