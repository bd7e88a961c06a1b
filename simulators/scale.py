"""Scale scenario of the centre: many generated towns planned at once on the distributed
engine, with faults injected into the fan-out.

* :func:`scale_configs` — ``n_towns`` towns of ``homes`` homes (:func:`simulators.town.generate_towns`);
  the full scenario is 14 × 721 = 10,094 homes.
* :func:`scale_requests` — each town's :class:`~vpp.central.townplan.TownRequest` for the
  same planning time (as the edge agents would send them), with flat market prices so the
  towns size offers and the centre aggregates them into lots.
* Faults, as picklable per-town task wrappers for :func:`vpp.central.fanout.plan_towns`
  (``task=``):

  - :class:`SlowTowns` — a town cut off / overloaded: its plan takes ``delay_s`` longer
    (a partitioned town never answers in time; its edge keeps its local plan);
  - :class:`LoseWorkerOnce` — the first attempt at one town's plan writes its worker's pid
    to a marker file and waits to be killed (``kill -9`` by :func:`kill_worker`, or a
    restart of the machine); the retried attempt plans normally.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import optimizer
from simulators.town import generate_towns
from vpp.central.townplan import TownPlan, TownRequest, plan_town, town_request
from vpp.config import SiteConfig, parse_config, updated

__all__ = ["SCALE_TOWNS", "SCALE_HOMES", "scale_configs", "scale_requests", "SlowTowns", "LoseWorkerOnce",
           "kill_worker", "MARKET"]

SCALE_TOWNS = 14
SCALE_HOMES = 721
#: Flat ΔkW prices [JPY/kW per 30 min, JPY/kWh] for the scenario's offers.
MARKET = optimizer.MarketPrices(capacity_up=5.0, capacity_down=5.0, energy_up=20.0)


def scale_configs(n_towns: int = SCALE_TOWNS, homes: int = SCALE_HOMES, seed: int = 0,
                  horizon_h: float = 24.0) -> list[SiteConfig]:
    """The towns' validated configs (planning horizon ``horizon_h`` [h])."""
    out = []
    for data in generate_towns(n_towns, homes, seed):
        cfg = parse_config(data, f"<town {data['site']['name']}>")
        out.append(updated(cfg, optimiser={"horizon_h": horizon_h}))
    return out


def scale_requests(configs: list[SiteConfig], now: datetime,
                   market: optimizer.MarketPrices | None = MARKET) -> list[TownRequest]:
    """One request per town, planned from ``now`` (UTC), SoC 0.5 everywhere."""
    return [town_request(c, now, town=c.site.name, market=market) for c in configs]


def _cancelled() -> bool:
    """True when the running Dask task has been cancelled (so a fault's wait can end early)."""
    try:
        from distributed import get_worker
        from distributed.worker import thread_state
        ts = get_worker().state.tasks.get(thread_state.key)
        return ts is None or ts.state in ("cancelled", "released", "forgotten")
    except Exception:  # noqa: BLE001 - not in a worker, or internals moved: just wait
        return False


def _wait(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not _cancelled():
        time.sleep(0.05)


@dataclass(frozen=True)
class SlowTowns:
    """Plan with ``task`` after waiting ``delays[town]`` [s] (0 for other towns)."""

    delays: dict[str, float] = field(default_factory=dict)

    def __call__(self, req: TownRequest) -> TownPlan:
        _wait(self.delays.get(req.town, 0.0))
        return plan_town(req)


@dataclass(frozen=True)
class LoseWorkerOnce:
    """The first attempt at ``town`` writes ``<marker_dir>/<town>.pid`` and waits up to
    ``hang_s`` [s] for its worker to be killed; any later attempt (the retry) just plans."""

    town: str
    marker_dir: str
    hang_s: float = 60.0

    def __call__(self, req: TownRequest) -> TownPlan:
        if req.town == self.town:
            marker = Path(self.marker_dir) / f"{req.town}.pid"
            try:
                with open(marker, "x", encoding="ascii") as f:  # first attempt only
                    f.write(str(os.getpid()))
            except FileExistsError:
                pass
            else:
                _wait(self.hang_s)
        return plan_town(req)


def kill_worker(pid: int) -> None:
    """``kill -9`` a worker process (its nanny starts a new one)."""
    os.kill(pid, signal.SIGKILL)
