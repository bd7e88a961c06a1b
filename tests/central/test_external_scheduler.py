"""The centre on an external Dask scheduler (as the compose deployment runs it): a
``dask scheduler`` and a ``dask worker`` started as their own processes on 127.0.0.1, found
through ``$VPP_SCHEDULER_ADDRESS`` by :func:`vpp.central.engine.default_client`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from simulators.scale import scale_configs, scale_requests
from tests.testkit.tiers import tier
from tests.testkit.wait import wait_until_sync
from vpp.central import engine
from vpp.central.fanout import plan_towns

DASK = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]


@pytest.fixture
@tier("runtime")
def scheduler(tmp_path):
    sfile = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[2]),
                                                                     os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([*DASK, "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sfile)], env=env, stderr=subprocess.DEVNULL)]
    try:
        wait_until_sync(lambda: sfile.exists() and sfile.stat().st_size > 0, timeout_s=60, what="scheduler file")
        address = json.loads(sfile.read_text())["address"]
        procs.append(subprocess.Popen([*WORKER, address, "--nthreads", "1", "--no-dashboard",
                                       "--host", "127.0.0.1", "--no-nanny"], env=env,
                                      stderr=subprocess.DEVNULL))
        yield address
    finally:
        for p in procs[1:]:  # the worker: a plain process (no nanny), killed outright
            p.kill()
        procs[0].terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_the_centre_plans_on_the_scheduler_named_in_the_environment(scheduler, monkeypatch):
    monkeypatch.setenv(engine.ADDRESS_ENV, scheduler)
    monkeypatch.setattr(engine, "_default", None)
    client = engine.default_client()
    try:
        assert client.scheduler.address == scheduler
        client.wait_for_workers(1, timeout=60)
        reqs = scale_requests(scale_configs(2, 5, horizon_h=6), datetime(2026, 6, 1, 3, tzinfo=timezone.utc))
        r = plan_towns(reqs, timeout_s=120)  # no client given: the default one
        assert r.complete and sorted(r.plans) == sorted(q.town for q in reqs)
        assert {p.worker_pid for p in r.plans.values()} <= set(engine.worker_pids(client).values())
    finally:
        client.close()
        monkeypatch.setattr(engine, "_default", None)
