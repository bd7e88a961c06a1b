"""Bus benchmark: N towns of in-process homes, each with its edge agent (separate processes
by default), one centre, a real nats-server with JetStream on loopback.

Measures, in one run:

* ``fanout_ack_p95_s`` — a plan round to every town (``rounds`` of them, one per second):
  seconds from the centre committing each town's plan to that town's ack arriving, p95 over
  all towns and rounds;
* ``telemetry_msgs_per_s`` — telemetry messages (one per town and physics step, every home's
  battery and meter in it) stored by the centre's sink per second while the towns run;
  ``telemetry_points_per_s`` the readings in them;
  (``telemetry_produced_msgs_per_s``: what the agents committed in the same window; the sink
  keeps up when the two match);
* ``lost`` — telemetry messages the agents committed that never reached the store (after a
  graceful stop of the agents, which drains their outboxes), plus commands never acknowledged;
* ``duplicated`` — commands a town acknowledged twice (= applied twice).

With agents in processes the telemetry sink runs in its own process too (``vpp central sink``),
as deployed: storing readings never delays the command path.

    python bench/bus.py [--towns 14] [--homes 721] [--duration 20] [--rounds 10] [--in-process] [--json]

``--json`` ends the output with one JSON line with the keys above plus ``towns`` and
``homes``. :func:`run` returns the same dict (``bench/scale.py`` imports it).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/ocpp.py would shadow the ocpp library
sys.path.insert(0, str(ROOT))

from vpp.bus.server import NatsServer  # noqa: E402
from vpp.central.service import CentralService  # noqa: E402

log = logging.getLogger("bench.bus")


def _p95(xs: list[float]) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def _outbox_ids(state_dir: Path) -> set[str]:
    path = state_dir / "agent.sqlite"
    if not path.exists():
        return set()
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT id FROM outbox WHERE kind='telemetry'")}
    finally:
        db.close()


def _stored(central_dir: Path, names: list[str]) -> tuple[int, int]:
    """(telemetry messages, readings) stored so far, read from the sink's files."""
    msgs = pts = 0
    inbox = central_dir / "telemetry-inbox.sqlite"
    if inbox.exists():
        db = sqlite3.connect(inbox)
        try:
            msgs = db.execute("SELECT COUNT(*) FROM applied WHERE kind='telemetry' AND outcome='stored'").fetchone()[0]
        except sqlite3.OperationalError:
            pass
        finally:
            db.close()
    for n in names:
        f = central_dir / "telemetry" / f"telemetry-{n}.sqlite"
        if f.exists():
            db = sqlite3.connect(f)
            try:
                pts += db.execute("SELECT COUNT(*) FROM points").fetchone()[0]
            except sqlite3.OperationalError:
                pass
            finally:
                db.close()
    return msgs, pts


def _outbox_mark(state_dirs: list[Path]) -> list[int]:
    """Newest outbox seq of each agent (telemetry produced after it is counted later)."""
    out = []
    for d in state_dirs:
        db = sqlite3.connect(d / "agent.sqlite")
        try:
            out.append(db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0])
        finally:
            db.close()
    return out


def _produced_since(state_dirs: list[Path], marks: list[int]) -> int:
    n = 0
    for d, m in zip(state_dirs, marks):
        db = sqlite3.connect(d / "agent.sqlite")
        try:
            n += db.execute("SELECT COUNT(*) FROM outbox WHERE kind='telemetry' AND seq > ?", (m,)).fetchone()[0]
        finally:
            db.close()
    return n


def _stored_ids(central_dir: Path, town: str) -> set[str]:
    db = sqlite3.connect(central_dir / "telemetry-inbox.sqlite")
    try:
        return {r[0] for r in db.execute("SELECT id FROM applied WHERE town=? AND kind='telemetry'", (town,))}
    finally:
        db.close()


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "vpp.cli", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(log_path, "ab"))


def _spawn_agent(town: str, homes: int, url: str, state: Path, step_s: float, speed: float, seed: int):
    state.mkdir(parents=True, exist_ok=True)
    return _spawn(["edge", "run", "--homes", str(homes), "--town", town, "--bus", url, "--state-dir", str(state),
                   "--step-s", str(step_s), "--speed", str(speed), "--seed", str(seed)], state.parent / f"{town}.log")


async def _in_process_agents(names, homes, url, root, step_s, speed, stop: asyncio.Event):
    from vpp.edge.agent import EdgeAgent
    from vpp.edge.home_physics import HomesTown, ManualClock
    from datetime import datetime, timezone

    clock = ManualClock(datetime.now(timezone.utc))
    towns = [HomesTown(n, homes, clock, seed=i) for i, n in enumerate(names)]
    agents = [await EdgeAgent(t, url, root / t.town).start() for t in towns]
    tick = step_s / speed
    try:
        while not stop.is_set():
            for t in towns:
                t.step(step_s)
            clock.advance(step_s)
            try:
                await asyncio.wait_for(stop.wait(), tick)
            except asyncio.TimeoutError:
                pass
    finally:
        for a in agents:
            await a.stop()


async def _run(towns: int, homes: int, duration_s: float, rounds: int, processes: bool, step_s: float,
               speed: float, root: Path) -> dict:
    names = [f"t{i:02d}" for i in range(towns)]
    srv = NatsServer(root / "nats").start()
    procs: list[subprocess.Popen] = []
    stop_local = asyncio.Event()
    local_task = None
    t_start = time.perf_counter()
    try:
        cdir = root / "central"
        # with processes, telemetry is stored by its own process (`vpp central sink`), as deployed
        central = await CentralService(srv.url, cdir, horizon_slots=8, sink=not processes).start(30)
        if processes:
            procs = [_spawn(["central", "sink", "--bus", srv.url, "--state-dir", str(cdir)], root / "sink.log")]
            procs += [_spawn_agent(n, homes, srv.url, root / n, step_s, speed, i) for i, n in enumerate(names)]
        else:
            local_task = asyncio.create_task(_in_process_agents(names, homes, srv.url, root, step_s, speed,
                                                                stop_local))
        deadline = time.monotonic() + 120
        while len(central.state.towns()) < towns and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if len(central.state.towns()) < towns:
            raise RuntimeError(f"only {len(central.state.towns())} of {towns} towns reported")
        log.info("all %d towns up after %.1f s", towns, time.perf_counter() - t_start)
        # steady telemetry window, with plan rounds fanned out once a second inside it
        def stored() -> tuple[int, int]:
            return _stored(cdir, names) if processes else (central.sink.messages, central.sink.points)

        dirs = [root / n for n in names]
        marks = _outbox_mark(dirs)
        (m0, p0), t0 = stored(), time.perf_counter()
        lat: list[float] = []
        unacked = 0
        for r in range(rounds):
            issued = central.plan_round()
            got = await central.wait_acks([e.id for e in issued.values()], 30)
            lat += [v for v in got.values() if v is not None]
            unacked += sum(v is None for v in got.values())
            await asyncio.sleep(max(0.0, 1.0 - (max(got.values(), default=0) or 0)))
        left = duration_s - (time.perf_counter() - t0)
        if left > 0:
            await asyncio.sleep(left)
        wall = time.perf_counter() - t0
        m1, p1 = stored()
        msgs, pts = m1 - m0, p1 - p0
        produced_msgs = _produced_since(dirs, marks)
        # graceful stop of the agents drains their outboxes; then count what never arrived
        if processes:
            for p in procs[1:]:
                p.send_signal(signal.SIGTERM)
            for p in procs[1:]:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        else:
            stop_local.set()
            await local_task
        produced = {n: _outbox_ids(root / n) for n in names}
        deadline = time.monotonic() + 60

        def missing() -> int:
            if processes:
                return sum(len(ids - _stored_ids(cdir, n)) for n, ids in produced.items())
            return sum(len(ids - {i for i, _, _ in central.sink.inbox.outcomes(town=n, kind="telemetry")})
                       for n, ids in produced.items())
        while missing() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        lost = missing() + unacked
        if processes:
            procs[0].send_signal(signal.SIGTERM)
            procs[0].wait(30)
        res = {"towns": towns, "homes": towns * homes, "fanout_ack_p95_s": round(_p95(lat), 4),
               "fanout_ack_median_s": round(statistics.median(lat), 4) if lat else None,
               "telemetry_msgs_per_s": round(msgs / wall, 1), "telemetry_points_per_s": round(pts / wall, 1),
               "telemetry_produced_msgs_per_s": round(produced_msgs / wall, 1),
               "lost": lost, "duplicated": central.double_acks,
               "agents_in_processes": processes,
               "plan_rounds": rounds, "window_s": round(wall, 1)}
        await central.stop()
        return res
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        srv.stop()


def run(towns: int = 14, homes: int = 721, *, duration_s: float = 20.0, rounds: int = 10,
        processes: bool = True, step_s: float = 60.0, speed: float = 60.0, root: str | Path | None = None) -> dict:
    """Run the benchmark (see module doc) and return its figures."""
    if root is not None:
        return asyncio.run(_run(towns, homes, duration_s, rounds, processes, step_s, speed, Path(root)))
    with tempfile.TemporaryDirectory(prefix="bench-bus-") as tmp:
        return asyncio.run(_run(towns, homes, duration_s, rounds, processes, step_s, speed, Path(tmp)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--towns", type=int, default=14)
    ap.add_argument("--homes", type=int, default=721, help="homes per town")
    ap.add_argument("--duration", type=float, default=20.0, help="measurement window [s]")
    ap.add_argument("--rounds", type=int, default=10, help="plan rounds fanned out to every town")
    ap.add_argument("--step-s", type=float, default=60.0, help="simulated seconds per physics step")
    ap.add_argument("--speed", type=float, default=60.0, help="simulated seconds per wall second")
    ap.add_argument("--in-process", action="store_true", help="agents in this process (default: one process each)")
    ap.add_argument("--json", action="store_true", help="end with one JSON line (logs on stderr)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    res = run(args.towns, args.homes, duration_s=args.duration, rounds=args.rounds, processes=not args.in_process,
              step_s=args.step_s, speed=args.speed)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
