"""Fleet planning fanned out per town on a real local Dask cluster (scheduler and two worker
processes on 127.0.0.1): the distributed plan equals the serial one, a worker killed
(``kill -9``) mid-plan does not stop the plan, a slow town does not hold up the others.

Shortened for CI: three towns of 30 homes on a 12 h horizon; one cluster for the module."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pytest

from simulators.scale import LoseWorkerOnce, SlowTowns, kill_worker, scale_configs, scale_requests
from tests.testkit.tiers import tier
from tests.testkit.wait import wait_until_sync
from vpp.central.engine import local_cluster, worker_pids
from vpp.central.distributed import DistributedPlanTowns
from vpp.central.fanout import plan_towns, plan_towns_serial
from vpp.central.townplan import plan_town

NOW = datetime(2026, 6, 1, 3, 0, tzinfo=timezone.utc)  # 12:00 JST


@pytest.fixture(scope="module")
@tier("runtime")
def client():
    c = local_cluster(2)
    yield c
    cluster = c.cluster
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def configs():
    return scale_configs(3, 30, horizon_h=12)


@pytest.fixture(scope="module")
def requests_(configs):
    return scale_requests(configs, NOW)


@pytest.fixture(scope="module")
def serial(requests_):
    return plan_towns_serial(requests_)


def assert_same_plan(a, b):
    assert a.town == b.town and a.battery_ids == b.battery_ids
    np.testing.assert_allclose(a.battery_w, b.battery_w, rtol=0, atol=1e-6)
    np.testing.assert_allclose(a.soc, b.soc, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.offer_up_w, b.offer_up_w, rtol=0, atol=1e-6)
    assert a.cost == pytest.approx(b.cost, abs=1e-6)


def executing(client) -> dict[str, int]:
    """Tasks running on each worker now."""
    return client.run(lambda dask_worker: len(dask_worker.state.executing))


def full_cluster(client):
    client.wait_for_workers(2, timeout=60)
    return client


def test_plan_on_two_workers_equals_the_serial_plan(client, requests_, serial):
    seen = []
    r = plan_towns(requests_, client=full_cluster(client), timeout_s=120, on_plan=lambda p: seen.append(p.town))
    assert r.complete and sorted(r.plans) == sorted(serial.plans) == sorted(seen)
    for town, plan in r.plans.items():
        assert_same_plan(plan, serial.plans[town])
        assert plan.validated and plan.battery_w.shape == (30 + 1, 48)  # 30 homes + the centre
        assert plan.worker_pid in worker_pids(client).values()  # planned by a worker process
    # every home keeps its reserve floor in every slot (the fleet planner's hard floor)
    for req in requests_:
        assert np.all(r.plans[req.town].soc >= np.atleast_2d(req.floor.T).T - 1e-6)
    # the market bid is the same whole number of lots as the serial one
    assert (r.bid is None) == (serial.bid is None)


def test_a_worker_killed_mid_plan_is_retried_and_the_plan_completes(client, requests_, serial, tmp_path):
    victim = requests_[1].town
    out = {}
    run = threading.Thread(target=lambda: out.setdefault("r", plan_towns(
        requests_, client=full_cluster(client), timeout_s=120, task=LoseWorkerOnce(victim, str(tmp_path)))))
    run.start()
    marker = tmp_path / f"{victim}.pid"
    wait_until_sync(lambda: marker.exists() and marker.read_text().strip(), timeout_s=60)
    pid = int(marker.read_text())
    assert pid in worker_pids(client).values()  # the town is being planned by that worker now
    kill_worker(pid)  # kill -9, mid-plan
    run.join(timeout=120)
    assert not run.is_alive()
    r = out["r"]
    assert r.complete, (r.late, r.failed)
    assert r.plans[victim].worker_pid != pid  # re-run on a live worker
    for town, plan in r.plans.items():
        assert_same_plan(plan, serial.plans[town])
    full_cluster(client)  # the nanny restarted the killed worker
    assert pid not in worker_pids(client).values()


def test_a_slow_town_does_not_hold_up_the_others(client, requests_, serial):
    slow = requests_[0].town
    seen = []
    r = plan_towns(requests_, client=full_cluster(client), timeout_s=10,
                   task=SlowTowns({slow: 300.0}), on_plan=lambda p: seen.append(p.town))
    assert r.late == [slow] and not r.failed  # reported: that town keeps its local plan
    others = [q.town for q in requests_ if q.town != slow]
    assert sorted(r.plans) == sorted(seen) == sorted(others)
    for town in others:
        assert_same_plan(r.plans[town], serial.plans[town])
    # the late task was cancelled: its worker stops waiting and is free again (not in 300 s)
    wait_until_sync(lambda: sum(executing(client).values()) == 0, timeout_s=30, what="late task cancelled")
    again = plan_towns(requests_[1:], client=full_cluster(client), timeout_s=120)
    assert again.complete


@dataclass(frozen=True)
class Summary:
    """What the central service knows of a town between plans (its PlanRequest's fields)."""

    town: str
    start: datetime
    headroom_wh: float
    n_slots: int = 24
    slot_s: int = 1800


def test_the_central_service_gets_each_towns_plan_body_from_the_cluster(client, configs):
    planner = DistributedPlanTowns({c.site.name: c for c in configs}, client=full_cluster(client), timeout_s=120)
    asked = {c.site.name: Summary(c.site.name, NOW, headroom_wh=40_000.0 * (k + 1)) for k, c in enumerate(configs)}
    asked["elsewhere"] = Summary("elsewhere", NOW, 1.0)  # no config here: not planned, no body
    got = dict(planner(asked))
    assert sorted(got) == sorted(c.site.name for c in configs)
    for town, body in got.items():
        req = planner.request(town, asked[town])
        # every home at its floor plus its capacity share of the town's headroom
        floor = req.floor if req.floor.ndim == 1 else req.floor[:, 0]
        head = float((req.capacity_wh * req.eta_discharge * (req.soc0 - floor)).sum())
        assert head == pytest.approx(asked[town].headroom_wh, rel=1e-6)
        assert datetime.fromisoformat(body["start"]) == NOW and body["slot_s"] == 1800 and len(body["battery_w"]) == 24
        np.testing.assert_allclose(body["battery_w"], plan_town(req).battery_w.sum(axis=0), atol=0.1)
    assert planner.last_late == [] and planner.last_failed == {}


def test_towns_must_be_unique(client, requests_):
    with pytest.raises(ValueError, match="unique"):
        plan_towns([requests_[0], requests_[0]], client=client)
