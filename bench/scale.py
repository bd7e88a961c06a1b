"""Scale benchmark of the centre: fleet planning for 14 towns × 721 homes (10,094 homes)
fanned out per town on a real local Dask cluster, 1 worker vs 2 workers in the same run.

* The towns are generated (:func:`simulators.scale.scale_configs`, own seed per town) and
  each sends the request its edge agent would (:func:`vpp.central.townplan.town_request`:
  arrays only; 48 h horizon at 15 min — the day-ahead bid plan — with flat ΔkW prices so
  offers are sized and aggregated into 1 MW lots).
* Baseline in the same run: the same towns planned one after another in this process
  (``plan_s_serial``); every distributed plan must equal it (checked, not timed).
* A cluster of 1 and one of 2 workers (processes on 127.0.0.1, one thread each; start-up
  incl. importing the planner on the workers reported separately), one warm-up fan-out
  each, then ``--runs`` fan-outs on each, alternating (so other load on the machine hits
  both alike); the median wall time (submission → last plan back) counts.
* The bus figures (``fanout_ack_p95_s``, ``telemetry_msgs_per_s``, ``lost``, ``duplicated``)
  come from ``bench/bus.py``'s ``run(...)`` when that module exists (NATS JetStream, edge
  agents); otherwise they are null and stderr says why.

    python bench/scale.py [--towns 14] [--homes 721] [--runs 5] [--json]

Goals: plan for 10,094 homes < 5 s with 2 workers; speedup_2_workers ≥ 1.6.
``--json``: stdout is JSON only — one line of details, then the last line
``{"homes", "towns", "plan_s_1_worker", "plan_s_2_workers", "speedup_2_workers",
"fanout_ack_p95_s", "telemetry_msgs_per_s", "lost", "duplicated"}``.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
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

import numpy as np  # noqa: E402

NOW = datetime(2026, 6, 1, 3, 0, tzinfo=timezone.utc)  # 12:00 JST, the day before delivery
BUS_KEYS = ("fanout_ack_p95_s", "telemetry_msgs_per_s", "lost", "duplicated")


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def max_difference(result, reference) -> float:
    """Largest |Δ battery power| [W] between two fan-outs' plans (inf if a town is missing)."""
    if sorted(result.plans) != sorted(reference.plans):
        return float("inf")
    return max(float(np.abs(result.plans[t].battery_w - reference.plans[t].battery_w).max()) for t in reference.plans)


def bench_workers(requests, serial, runs: int, sizes=(1, 2)) -> dict[int, dict]:
    """Median fan-out wall time per cluster size. Both clusters stay up and their runs
    alternate (1, 2, 1, 2, …) so that other load on the machine hits both alike."""
    from vpp.central.engine import local_cluster, worker_pids
    from vpp.central.fanout import plan_towns

    clients, out = {}, {}
    try:
        for n in sizes:
            t0 = time.perf_counter()
            clients[n] = local_cluster(n)
            out[n] = {"startup_s": round(time.perf_counter() - t0, 3), "runs_s": [], "max_diff_to_serial_w": 0.0}
            assert len(worker_pids(clients[n])) == n
            out[n]["warmup_s"] = round(plan_towns(requests, client=clients[n], timeout_s=300).wall_s, 3)
        for _ in range(runs):
            for n in sizes:
                r = plan_towns(requests, client=clients[n], timeout_s=300)
                if not r.complete:
                    raise SystemExit(f"{n} workers: towns late {r.late} / failed {r.failed}")
                out[n]["runs_s"].append(round(r.wall_s, 3))
                # the towns' CPU time over (wall × workers): 1.0 = every worker had a core throughout
                out[n].setdefault("cpu_share", []).append(
                    round(sum(p.timings["cpu_s"] for p in r.plans.values()) / (r.wall_s * n), 2))
                out[n]["max_diff_to_serial_w"] = max(out[n]["max_diff_to_serial_w"], max_difference(r, serial))
    finally:
        for c in clients.values():
            cluster = c.cluster
            c.close()
            cluster.close()
    for n in sizes:
        o = out[n]
        o["plan_s"] = round(statistics.median(o["runs_s"]), 3)
        log(f"{n} worker(s): start-up {o['startup_s']:.2f} s, plan {o['plan_s']:.2f} s (runs {o['runs_s']}), "
            f"max |Δ| to the serial plan {o['max_diff_to_serial_w']:.3g} W, "
            f"CPU share (towns' CPU / wall × workers) {o['cpu_share']}")
    return out


def bus_figures(towns: int, homes: int) -> dict:
    """The bus figures from ``bench/bus.py run(...)`` if it exists, else nulls."""
    path = ROOT / "bench" / "bus.py"
    spec = importlib.util.spec_from_file_location("bench_bus", path) if path.exists() else None
    if spec is None or spec.loader is None:
        log("bench/bus.py not present (the NATS bus half of the scale-out): bus figures are null")
        return dict.fromkeys(BUS_KEYS)
    try:
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        params = inspect.signature(mod.run).parameters
        kw = {k: v for k, v in (("towns", towns), ("homes", homes)) if k in params}
        res = mod.run(**kw)
        return {k: res.get(k) for k in BUS_KEYS}
    except Exception as e:  # noqa: BLE001 - the planning figures stand on their own
        log(f"bench/bus.py run(...) failed ({type(e).__name__}: {e}): bus figures are null")
        return dict.fromkeys(BUS_KEYS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--towns", type=int, default=14)
    ap.add_argument("--homes", type=int, default=721)
    ap.add_argument("--horizon-h", type=float, default=48.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-bus", action="store_true", help="skip bench/bus.py (bus figures null)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    from simulators.scale import scale_configs, scale_requests
    from vpp.central.fanout import plan_towns_serial

    t0 = time.perf_counter()
    configs = scale_configs(a.towns, a.homes, horizon_h=a.horizon_h)
    requests = scale_requests(configs, NOW)
    homes = sum(r.n_homes - 1 for r in requests)  # the community centre of each town is not a home
    log(f"{a.towns} towns, {homes} homes ({sum(r.n_homes for r in requests)} batteries), "
        f"{requests[0].n} slots; requests built in {time.perf_counter() - t0:.1f} s, "
        f"{sum(r.nbytes() for r in requests) / 1e6:.1f} MB of arrays")
    plan_towns_serial(requests[:1])  # imports and first solve out of the baseline
    serial = plan_towns_serial(requests)
    lots = int(serial.bid.lots_up.sum() + serial.bid.lots_down.sum()) if serial.bid else 0
    log(f"serial (this process): {serial.wall_s:.2f} s; bid {lots} lot-slots of 1 MW")
    res = bench_workers(requests, serial, a.runs)
    one, two = res[1], res[2]
    speedup = one["plan_s"] / two["plan_s"]
    log(f"speedup 2 workers / 1 worker: {speedup:.2f}× (goal ≥ 1.6×); 2 workers {two['plan_s']:.2f} s (goal < 5 s)")
    bus = dict.fromkeys(BUS_KEYS) if a.no_bus else bus_figures(a.towns, a.homes)
    if a.no_bus:
        log("--no-bus: bus figures are null")
    if a.json:
        print(json.dumps({"engine": "dask.distributed", "slots": requests[0].n, "plan_s_serial": round(serial.wall_s, 3),
                          "one_worker": one, "two_workers": two, "bid_lot_slots": lots,
                          "loadavg_1min": round(os.getloadavg()[0], 2)}))
        print(json.dumps({"homes": homes, "towns": a.towns, "plan_s_1_worker": one["plan_s"],
                          "plan_s_2_workers": two["plan_s"], "speedup_2_workers": round(speedup, 2), **bus}))


if __name__ == "__main__":
    main()
