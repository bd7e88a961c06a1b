"""Engine comparison for the centre's fan-out: Dask ``distributed`` vs Ray, on this machine,
on the real per-town planning task (:func:`vpp.central.townplan.plan_town`).

Each engine runs in its own interpreter (Ray is not a dependency of the project; install it
in a separate venv to compare, e.g. ``python3.12 -m venv /work/venv-ray`` + ``ray`` and the
project's runtime dependencies):

    .venv/bin/python bench/engines.py --engine dask [--json]
    /work/venv-ray/bin/python bench/engines.py --engine ray [--json]

Measured, for a local cluster of 2 worker processes on 127.0.0.1 (1 thread / CPU each):

* ``startup_s``: from nothing to a cluster that has answered one trivial task;
* ``rss_mb``: resident memory of every process the engine started (scheduler / GCS, raylet,
  nannies, workers, …; children of this process) plus this process's growth, idle after
  start-up, and ``rss_after_plan_mb`` after the planning runs (workers hold pvlib, pandas,
  HiGHS and the plans);
* ``noop_tasks_per_s``: 2,000 empty tasks submitted and gathered (scheduling overhead);
* ``plan_s_2_workers``: median of ``--runs`` fan-outs of ``--towns`` × ``--homes`` (48 h
  horizon, offers), results equal to the in-process plan (checked); ``plan_s_1_worker`` from
  a second, 1-worker cluster started after the first is shut down;
  ``speedup_2_workers`` their ratio; ``cpu_share_N`` per run: the towns' CPU time over
  (wall × workers), 1.0 = every worker had a core throughout (on a shared machine it shows
  how much of the wall time was waiting for a core); ``task_cpu_s_N`` the towns' CPU time.

``--json``: one JSON line with those keys and ``engine``, ``version``, ``loadavg_1min``
(the machine's load at the end: on a shared 2-core machine compare runs at similar load).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/ocpp.py would shadow the ocpp library
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

NOW = datetime(2026, 6, 1, 3, 0, tzinfo=timezone.utc)


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def tree_rss_mb(base_rss: int) -> float:
    """RSS of all descendants of this process plus this process's growth over ``base_rss`` [MB]."""
    me = psutil.Process()
    total = max(me.memory_info().rss - base_rss, 0)
    for p in me.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 1e6


def noop(x: int) -> int:
    return x


class DaskEngine:
    name = "dask.distributed"

    def __init__(self, n: int) -> None:
        import distributed

        from vpp.central.engine import local_cluster

        self.version = distributed.__version__
        self.client = local_cluster(n, warm=False)
        self.client.submit(noop, 1).result()

    def warm(self) -> None:
        from vpp.central.engine import warm_up

        warm_up(self.client)

    def map(self, fn, items) -> list:
        return self.client.gather(self.client.map(fn, items, pure=False))

    def plan(self, requests) -> list:
        from vpp.central.townplan import plan_town

        return self.map(plan_town, requests)

    def close(self) -> None:
        cluster = self.client.cluster
        self.client.close()
        cluster.close()


class RayEngine:
    name = "ray"

    def __init__(self, n: int) -> None:
        import ray

        self.ray, self.version = ray, ray.__version__
        ray.init(num_cpus=n, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="ERROR",
                 log_to_driver=False)
        self._noop = ray.remote(noop)
        ray.get(self._noop.remote(1))

    def warm(self) -> None:
        import importlib

        def imp(_):
            importlib.import_module("vpp.central.townplan")
            return os.getpid()
        f = self.ray.remote(imp)
        self.ray.get([f.remote(i) for i in range(8)])

    def map(self, fn, items) -> list:
        f = self._noop if fn is noop else self.ray.remote(max_retries=1)(fn)
        return self.ray.get([f.remote(x) for x in items])

    def plan(self, requests) -> list:
        from vpp.central.townplan import plan_town

        return self.map(plan_town, requests)

    def close(self) -> None:
        self.ray.shutdown()


ENGINES = {"dask": DaskEngine, "ray": RayEngine}


def run(engine: str, towns: int, homes: int, runs: int) -> dict:
    from simulators.scale import scale_configs, scale_requests
    from vpp.central.townplan import plan_town

    requests = scale_requests(scale_configs(towns, homes, horizon_h=48), NOW)
    plan_town(requests[0])
    ref = [plan_town(r) for r in requests]
    base = psutil.Process().memory_info().rss
    out: dict = {}
    for n in (2, 1):
        t0 = time.perf_counter()
        e = ENGINES[engine](n)
        startup = time.perf_counter() - t0
        if n == 2:
            out.update(engine=e.name, version=e.version, startup_s=round(startup, 3), rss_mb=round(tree_rss_mb(base), 1))
        e.warm()
        e.plan(requests)  # warm-up
        walls, shares, cpus = [], [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            plans = e.plan(requests)
            walls.append(time.perf_counter() - t0)
            cpus.append(sum(p.timings["cpu_s"] for p in plans))
            shares.append(round(cpus[-1] / (walls[-1] * n), 2))
            diff = max(float(np.abs(p.battery_w - q.battery_w).max()) for p, q in zip(plans, ref))
            assert diff < 1e-6, f"{engine}: plan differs from the in-process plan by {diff} W"
        key = "plan_s_2_workers" if n == 2 else "plan_s_1_worker"
        out[key] = round(statistics.median(walls), 3)
        # the towns' CPU time over (wall × workers): 1.0 = each worker had a core throughout
        out[f"cpu_share_{n}"] = shares
        out[f"task_cpu_s_{n}"] = round(statistics.median(cpus), 2)
        if n == 2:
            out["rss_after_plan_mb"] = round(tree_rss_mb(base), 1)
            t0 = time.perf_counter()
            e.map(noop, range(2000))
            out["noop_tasks_per_s"] = round(2000 / (time.perf_counter() - t0))
        log(f"{engine} {n} worker(s): start-up {startup:.2f} s, plan {out[key]:.2f} s ({[round(w, 2) for w in walls]})")
        e.close()
        time.sleep(1.0)
    out["speedup_2_workers"] = round(out["plan_s_1_worker"] / out["plan_s_2_workers"], 2)
    out["loadavg_1min"] = round(os.getloadavg()[0], 2)  # other work on the machine during the run
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=sorted(ENGINES), required=True)
    ap.add_argument("--towns", type=int, default=14)
    ap.add_argument("--homes", type=int, default=721)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = run(a.engine, a.towns, a.homes, a.runs)
    log(json.dumps(res))
    if a.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
