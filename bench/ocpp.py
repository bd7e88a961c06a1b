"""OCPP central-system benchmark: 200 simulated stations connected at once over real WebSockets.

The central system (:class:`vpp.csms.server.CentralSystem`) runs in this process on loopback,
with a stand-in for the control loop on the same event loop: a task that wakes every
``--tick`` seconds and records how late it woke (what the loop's cadence suffers when the
central system is busy). The stations (:class:`simulators.ocpp_station.SimStation`, half OCPP
1.6J and half 2.0.1, each with a charging car) run in a child process, so their CPU is not
counted; each sends MeterValues every second.

Phases, all in the same run:

1. **baseline** — one station connected: the loop's lateness and the profile round trip
   (``set_current_limit`` → ``SetChargingProfile`` with the running transaction → answer);
2. **load** — all stations connected: MeterValues per second received, the central system's
   CPU time per message received (process CPU over the phase / frames; the schema
   validation threads included), profile round trips to stations in turn, the loop's lateness.

Ratios are load / baseline. ``--json``: one JSON object on stdout (logs on stderr) ending with
``{"stations", "profile_rtt_p99_ms", "meter_values_per_s", "cpu_us_per_message"}``.

Usage: ``.venv/bin/python bench/ocpp.py [--json] [--stations 200] [--seconds 10]``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# run as a script, this file's folder leads sys.path and its name would shadow the ``ocpp`` library
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench.ocpp")


def site_config(n: int):
    from vpp.config import parse_config

    devices = [{"id": f"cp{i:03d}", "kind": "ev_charger", "protocol": "ocpp", "version": "1.6" if i % 2 else "2.0.1",
                "ocpp": {"password": f"pw{i}"}, "ratings": {"voltage_v": 200, "min_current_a": 6, "max_current_a": 32}}
               for i in range(n)]
    return parse_config({
        "site": {"name": "bench", "latitude": 38.27, "longitude": 140.87},
        "grid": {"import_limit_w": 1e6, "export_limit_w": 0},
        "tariff": {"periods": [{"name": "flat", "start": "00:00", "end": "00:00", "buy_per_kwh": 30}]},
        "ocpp": {"port": 0, "security_profile": 1, "call_timeout_s": 10, "max_messages_per_s": 50},
        "devices": devices,
    })


# ------------------------------------------------------------------------ station process
async def run_stations(url: str, first: int, count: int, ready: Path) -> None:
    """Child: connect stations ``first … first+count-1``, plug a car into each, run until killed."""
    from simulators.ocpp_station import Car, SimStation, StationModel

    sims = [SimStation(f"cp{i:03d}", "1.6" if i % 2 else "2.0.1", url, password=f"pw{i}",
                       model=StationModel(voltage_v=200), meter_interval_s=1.0, speed=1.0)
            for i in range(first, first + count)]
    await asyncio.gather(*(s.connect() for s in sims))
    await asyncio.gather(*(s.plug(Car()) for s in sims))
    ready.write_text("ok")
    await asyncio.Event().wait()


def spawn_stations(url: str, first: int, count: int, ready: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(Path(__file__)), "--child", url, str(first), str(count), str(ready)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


async def wait_file(path: Path, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    end = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            raise SystemExit(f"station process exited with {proc.returncode}")
        if time.monotonic() > end:
            raise SystemExit("stations did not connect in time")
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------------ measurements
class Ticker:
    """Stand-in for the control loop: wakes every ``period_s`` and records its lateness [s]."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.late: list[float] = []
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.period_s
        while True:
            await asyncio.sleep(max(due - loop.time(), 0.0))
            self.late.append(loop.time() - due)
            due += self.period_s

    def start(self) -> None:
        self.late.clear()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> list[float]:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return list(self.late)


async def profile_rtts(cs, ids: list[str], seconds: float, per_s: float) -> list[float]:
    """Round trips [s] of ``set_current_limit`` to ``ids`` in turn, ``per_s`` a second."""
    out = []
    end = time.monotonic() + seconds
    k = 0
    while time.monotonic() < end:
        sid = ids[k % len(ids)]
        amps = 6.0 + (k % 20)
        t = time.perf_counter()
        await cs.device(sid).set_current_limit(amps)
        out.append(time.perf_counter() - t)
        k += 1
        await asyncio.sleep(1.0 / per_s)
    return out


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


async def phase(cs, ids: list[str], seconds: float, tick_s: float, rtt_per_s: float) -> dict:
    meter0 = sum(st.counters.get("meter_values", 0) for st in cs.stations.values())
    rejected0 = cs.counters().get("profiles_rejected", 0)
    msgs0, cpu0, t0 = cs.messages, time.process_time(), time.perf_counter()
    ticker = Ticker(tick_s)
    ticker.start()
    rtts = await profile_rtts(cs, ids, seconds, rtt_per_s)
    late = await ticker.stop()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    msgs = cs.messages - msgs0
    meters = sum(st.counters.get("meter_values", 0) for st in cs.stations.values()) - meter0
    rejected = cs.counters().get("profiles_rejected", 0) - rejected0
    return {"seconds": round(wall, 2), "messages": msgs, "messages_per_s": round(msgs / wall, 1),
            "meter_values_per_s": round(meters / wall, 1), "cpu_us_per_message": round(1e6 * cpu / max(msgs, 1), 1),
            "cpu_share": round(cpu / wall, 3), "profiles": len(rtts), "profiles_rejected": rejected,
            "profile_rtt_p50_ms": round(1e3 * pct(rtts, 50), 2), "profile_rtt_p99_ms": round(1e3 * pct(rtts, 99), 2),
            "loop_late_p50_ms": round(1e3 * pct(late, 50), 2), "loop_late_p99_ms": round(1e3 * pct(late, 99), 2),
            "loop_late_max_ms": round(1e3 * max(late, default=float("nan")), 2), "loop_ticks": len(late)}


async def bench(n: int, seconds: float, tick_s: float, rtt_per_s: float, workdir: Path) -> dict:
    from vpp.csms.server import CentralSystem

    cs = CentralSystem(site_config(n))
    await cs.start()
    procs = []
    try:
        log.info("baseline: one station")
        procs.append(spawn_stations(cs.url, 0, 1, workdir / "ready0"))
        await wait_file(workdir / "ready0", procs[-1])
        base = await phase(cs, ["cp000"], seconds, tick_s, rtt_per_s)
        log.info("baseline %s", base)
        log.info("load: %d more stations connecting at once", n - 1)
        t = time.perf_counter()
        half = (n - 1) // 2
        procs.append(spawn_stations(cs.url, 1, half, workdir / "ready1"))
        procs.append(spawn_stations(cs.url, 1 + half, n - 1 - half, workdir / "ready2"))
        await wait_file(workdir / "ready1", procs[1])
        await wait_file(workdir / "ready2", procs[2])
        connect_s = time.perf_counter() - t
        connected = sum(st.connected for st in cs.stations.values())
        await asyncio.sleep(2.0)  # let MeterValues settle into their 1-s rhythm
        load = await phase(cs, list(cs.devices), seconds, tick_s, rtt_per_s)
        log.info("load %s", load)
        counters = cs.counters()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        await cs.stop()
    return {
        "baseline_1_station": base, "load": load, "connect_all_s": round(connect_s, 2),
        "connected": connected, "counters": {k: v for k, v in counters.items() if k != "messages"},
        "ratio_profile_rtt_p99": round(load["profile_rtt_p99_ms"] / max(base["profile_rtt_p99_ms"], 1e-6), 2),
        "ratio_loop_late_p99": round(load["loop_late_p99_ms"] / max(base["loop_late_p99_ms"], 1e-6), 2),
        "loop_tick_s": tick_s,
        "stations": connected,
        "profile_rtt_p99_ms": load["profile_rtt_p99_ms"],
        "meter_values_per_s": load["meter_values_per_s"],
        "cpu_us_per_message": load["cpu_us_per_message"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--stations", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each phase [s]")
    ap.add_argument("--tick", type=float, default=0.1, help="the loop stand-in's period [s]")
    ap.add_argument("--rtt-per-s", type=float, default=20.0, help="profile round trips per second")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    logging.getLogger("vpp.csms").setLevel(logging.ERROR)
    logging.getLogger("ocpp").setLevel(logging.WARNING)

    if a.child:
        url, first, count, ready = a.child
        asyncio.run(run_stations(url, int(first), int(count), Path(ready)))
        return 0
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-ocpp-") as tmp:
        out = asyncio.run(bench(a.stations, a.seconds, a.tick, a.rtt_per_s, Path(tmp)))
    summary = {k: out[k] for k in ("stations", "profile_rtt_p99_ms", "meter_values_per_s", "cpu_us_per_message")}
    if a.json:
        print(json.dumps(out))
        print(json.dumps(summary))
    else:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
