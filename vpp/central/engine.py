"""The distributed engine of the centre: a Dask ``distributed`` cluster (chosen by measurement
over Ray, see ``docs/distributed-engine.md``).

* :func:`local_cluster` starts a real cluster on loopback: one scheduler and ``n_workers``
  worker *processes* (each under a nanny that restarts it if it dies), one thread each, BLAS
  and solver threads pinned to 1 so that ``n`` workers use ``n`` cores.
* :func:`connect` attaches to an external scheduler (``tcp://host:8786``, e.g. the compose
  file's scheduler with two workers); :func:`default_client` picks one from ``address`` or
  the ``VPP_SCHEDULER_ADDRESS`` environment variable, else starts a local cluster, once per
  process.
* Workers run with glibc's default allocator settings (see :func:`local_cluster`; set
  nothing of ``MALLOC_TRIM_THRESHOLD_`` for external ``dask worker`` processes either).
* :func:`warm_up` imports the planner on every worker so the first plan is not charged with
  imports (pvlib, pandas, HiGHS: ~1 s per worker).

A worker lost mid-task is handled by the scheduler: its tasks are re-run on another worker
(up to ``distributed.scheduler.allowed-failures`` worker deaths per task) and the nanny starts
a replacement process.
"""
from __future__ import annotations

import atexit
import importlib
import os
import threading

import dask
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["local_cluster", "connect", "default_client", "warm_up", "worker_pids", "ADDRESS_ENV"]

#: Environment variable naming an external scheduler (``tcp://10.0.0.5:8786``).
ADDRESS_ENV = "VPP_SCHEDULER_ADDRESS"
#: One solver / BLAS thread per worker process: the cluster's parallelism is its workers.
SINGLE_THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}

_default: Client | None = None
_lock = threading.Lock()


def local_cluster(n_workers: int = 2, *, memory_limit: str = "2GiB", warm: bool = True) -> Client:
    """A client of a new local cluster of ``n_workers`` processes on 127.0.0.1 (no dashboard).

    Close it with ``client.close(); client.cluster.close()`` (or use it as a context manager
    and close the cluster after)."""
    if n_workers < 1:
        raise ValueError("n_workers must be >= 1")
    # Dask sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which pins glibc's mmap threshold:
    # every plan-sized numpy array is then mmap'ed and unmapped anew (page faults) — +40 % CPU
    # per town plan, measured (0.94 → 1.32 s for 6 towns in one process). Keep glibc's default.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, memory_limit=memory_limit, env=dict(SINGLE_THREAD_ENV),
                               silence_logs=40)
    client = Client(cluster)
    if warm:
        warm_up(client)
    return client


def connect(address: str, *, timeout_s: float = 10.0, warm: bool = True) -> Client:
    """A client of the running scheduler at ``address`` (``tcp://host:port``)."""
    client = Client(address, timeout=timeout_s)
    if warm:
        warm_up(client)
    return client


def default_client(address: str | None = None) -> Client:
    """The process's client: ``address``, else ``$VPP_SCHEDULER_ADDRESS``, else a local
    cluster of two workers (started once, closed at exit)."""
    global _default
    with _lock:
        if _default is None or _default.status != "running":
            address = address or os.environ.get(ADDRESS_ENV)
            _default = connect(address) if address else local_cluster(2)
            atexit.register(_close, _default)
        return _default


def _close(client: Client) -> None:
    cluster = client.cluster
    client.close()
    if cluster is not None:
        cluster.close()


def _import(name: str) -> int:
    importlib.import_module(name)
    return os.getpid()


def warm_up(client: Client, module: str = "vpp.central.townplan") -> None:
    """Import ``module`` on every worker now (and on replacement workers when they start)."""
    client.run(_import, module)
    client.register_plugin(_Preload(module), name="vpp-preload")


class _Preload(WorkerPlugin):
    """Worker plugin: a worker (re)started by its nanny imports the planner before it works."""

    def __init__(self, module: str) -> None:
        self.module = module

    def setup(self, worker) -> None:  # noqa: ANN001 - WorkerPlugin.setup
        importlib.import_module(self.module)


def worker_pids(client: Client) -> dict[str, int]:
    """Worker address → process id (for fault injection and memory figures)."""
    return client.run(os.getpid)
