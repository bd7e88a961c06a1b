"""Telemetry storage: one :class:`Store` contract, InfluxDB and embedded (SQLite) backends.

Only this package imports the InfluxDB client and sqlite3. Schema, idempotency and rollups
are described in :mod:`vpp.storage.base`; the write path with its disk spool in
:mod:`vpp.storage.pipeline`.
"""
from __future__ import annotations

from vpp.config import EmbeddedStorage, InfluxStorage

from .base import Store, StorageError, StoreUnavailable, WriteResult
from .pipeline import TelemetryPipeline

__all__ = ["Store", "StorageError", "StoreUnavailable", "WriteResult", "TelemetryPipeline", "open_store"]


def open_store(cfg: InfluxStorage | EmbeddedStorage, *, site: str, connect: bool = True) -> Store:
    """Build the store for ``cfg``; with ``connect`` also open and verify it.

    Raises :class:`StorageError` (with the reason) when it cannot be used.
    """
    if isinstance(cfg, InfluxStorage):
        from .influx import InfluxStore
        store: Store = InfluxStore(cfg, site=site)
    elif isinstance(cfg, EmbeddedStorage):
        from .embedded import EmbeddedStore
        store = EmbeddedStore(cfg, site=site)
    else:
        raise TypeError(f"unknown storage config {type(cfg).__name__}")
    if connect:
        store.open()
    return store
