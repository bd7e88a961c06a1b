"""Telemetry pipeline: snapshots → bounded queue → batched writer → store, spooling on outage.

``submit()`` never blocks on I/O and never silently drops: when the in-memory queue is full the
oldest batch is spilled to the disk spool (counted in ``overflows``, logged). Only when the spool
itself is full are points dropped, counted in ``dropped`` and logged as errors.

Every snapshot is checked by :func:`vpp.storage.validate.sanitize`; implausible values are
dropped from it and it is stored with quality ``bad`` (counted in ``bad``, logged).

While the store is down (refused, timeout, 5xx, or auth/database errors at run time) batches
go to the spool; when it answers again the spool is replayed oldest first, and new batches
follow only after the spool is empty, so points arrive in order. Writes are idempotent per
(measurement, tags, ts), so a crash during replay cannot double-count.

Replay is never blocked by one bad record: a spooled record that cannot be decoded, or that
the store refuses with anything but a :class:`StorageError` (a poison record), is moved to the
spool's ``quarantine/`` and replay goes on; damaged bytes in a segment are skipped by the spool
(see :mod:`vpp.storage.spool`).

Metrics (``pipeline.metrics``): ``submitted``, ``queued`` (current queue length), ``written``,
``spooled``, ``replayed``, ``rejected`` (refused by the store as malformed), ``bad``,
``overflows``, ``dropped``, ``quarantined`` (records moved aside by replay), ``spool_bytes``,
``spool_alarm`` (> 80 % full), ``spool_fault`` (the spool's current write fault or None),
``spool_evicted`` (batches evicted to keep the newest within budget), ``spool_quarantine``
(files waiting in the quarantine directory), ``store_up``. The runtime's liveness monitor turns
``spool_*`` into the ``spool`` alarm.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from drivers.protocols import DeviceKind, Quality, Snapshot
from vpp.config import EmbeddedStorage, InfluxStorage

from .base import Store, StorageError, StoreUnavailable, WriteResult, from_ns, ts_ns
from .spool import Spool, SpoolFull
from .validate import sanitize

log = logging.getLogger(__name__)
_MAX_BACKOFF_S = 5.0
_LOG_EVERY_S = 10.0


def encode_batch(snaps: list[Snapshot]) -> bytes:
    """Spool payload for a batch of (sanitised) snapshots."""
    return json.dumps([[s.device, s.kind.value, ts_ns(s.ts), s.values, s.quality.value, s.reason]
                       for s in snaps], separators=(",", ":")).encode()


def decode_batch(payload: bytes) -> list[Snapshot]:
    return [Snapshot(d, DeviceKind(k), from_ns(ns), v, Quality(q), r)
            for d, k, ns, v, q, r in json.loads(payload)]


class TelemetryPipeline:
    """Batch snapshots into a :class:`~vpp.storage.base.Store`, spooling to disk on outage.

    Parameters
    ----------
    store : an unopened or opened store; :meth:`start` opens it.
    cfg : the storage section (batch size, flush interval, queue and spool bounds).
    spool_dir : directory of the disk spool (default: ``cfg.spool_dir`` or ``<db dir>/spool``).
    """

    def __init__(self, store: Store, cfg: InfluxStorage | EmbeddedStorage,
                 spool_dir: str | os.PathLike | None = None):
        self.store = store
        self.cfg = cfg
        if spool_dir is None:
            spool_dir = getattr(cfg, "spool_dir", None) or Path(getattr(cfg, "path", "var/x")).parent / "spool"
        self.spool = Spool(spool_dir, getattr(cfg, "spool_max_bytes", 512 * 1024 * 1024))
        self.batch_size = cfg.batch_size
        self.queue_max = max(cfg.queue_max, cfg.batch_size)
        self._q: deque[Snapshot] = deque()
        self._counts = dict(submitted=0, written=0, spooled=0, replayed=0, rejected=0, bad=0,
                            overflows=0, dropped=0, quarantined=0)
        self.store_up = False
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._next_probe = 0.0
        self._backoff = cfg.flush_interval_s
        self._last_log: dict[str, float] = {}
        self._spool_lock = threading.Lock()
        self._replayed: dict[Path, int] = {}
        self._alarmed = False

    # -- public ----------------------------------------------------------------------------
    @property
    def metrics(self) -> dict[str, Any]:
        return {**self._counts, "queued": len(self._q), "spool_bytes": self.spool.bytes,
                "spool_alarm": self.spool.alarm, "spool_fault": self.spool.fault,
                "spool_evicted": self.spool.evicted_records, "spool_quarantine": self.spool.quarantined_files(),
                "store_up": self.store_up}

    def submit(self, snapshot: Snapshot) -> None:
        """Queue one snapshot (non-blocking; spills the oldest batch to disk when full)."""
        self._counts["submitted"] += 1
        if len(self._q) >= self.queue_max:
            self._overflow()
        self._q.append(snapshot)
        if len(self._q) >= self.batch_size and self._wake is not None:
            self._notify()

    async def start(self) -> None:
        """Open the store and start the writer task.

        Raises :class:`StorageError` on configuration faults (credentials, missing database);
        an unreachable store is not an error here: the pipeline spools until it answers.
        """
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            await asyncio.to_thread(self.store.open)
            self.store_up = self._opened = True
        except StoreUnavailable as e:
            log.warning("store unavailable at start, spooling until it answers: %s", e)
            self.store_up = False
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="telemetry-writer")

    async def stop(self) -> None:
        """Flush everything (to the store, or to the spool if it is down) and stop."""
        self._stopping = True
        if self._task is not None:
            self._notify()
            await self._task
            self._task = None
        self.spool.close()

    async def flushed(self, timeout: float = 30.0) -> bool:
        """Wait until the queue and spool are empty (everything written); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._q or len(self.spool) or self._busy:
            if time.monotonic() > deadline:
                return False
            self._notify()
            await asyncio.sleep(0.02)
        return True

    # -- writer ----------------------------------------------------------------------------
    _busy = False
    _opened = False

    def _notify(self) -> None:
        if self._loop is None or self._wake is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.cfg.flush_interval_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            self._busy = True
            try:
                await self._cycle()
            except Exception:  # the writer must survive anything
                log.exception("telemetry writer cycle failed")
                if self._stopping:  # do not spin on stop: park what is left on disk
                    while self._q:
                        self._spool_batch(self._clean(self._take()))
            finally:
                self._busy = False
            if self._stopping and not self._q:
                return

    async def _cycle(self) -> None:
        if not self._opened and time.monotonic() >= self._next_probe:
            # the store was down at start: open (verify, create the database) once it answers
            try:
                await asyncio.to_thread(self.store.open)
                self._opened = True
                self._mark_up()
            except StorageError as e:
                self._mark_down(e)
                self._log_limited("open", logging.WARNING, "store still unavailable: %s", e)
        if not self._opened:
            self.store_up = False
        elif len(self.spool) and (self.store_up or time.monotonic() >= self._next_probe):
            await self._replay()
        pending: tuple[list[Snapshot], asyncio.Future] | None = None
        while self._q:
            batch = self._take()
            if not self.store_up or len(self.spool):
                if pending is not None:
                    await self._finish(*pending)
                    pending = None
                await asyncio.to_thread(self._spool_batch, self._clean(batch))
                continue
            prepared = await asyncio.to_thread(self._prepare, batch)
            if pending is not None:
                await self._finish(*pending)
                if not self.store_up:
                    await asyncio.to_thread(self._spool_batch, prepared[0])
                    pending = None
                    continue
            pending = (prepared[0], asyncio.ensure_future(asyncio.to_thread(self.store.write_prepared, prepared[1])))
            await asyncio.sleep(0)
        if pending is not None:
            await self._finish(*pending)
        if self._stopping and len(self.spool) and self.store_up:
            await self._replay()

    def _take(self) -> list[Snapshot]:
        out, q = [], self._q
        try:
            for _ in range(self.batch_size):
                out.append(q.popleft())
        except IndexError:  # drained (submit may run on another thread)
            pass
        return out

    def _prepare(self, batch: list[Snapshot]) -> tuple[list[Snapshot], Any]:
        clean = self._clean(batch)
        return clean, self.store.prepare(clean)

    def _clean(self, batch: list[Snapshot]) -> list[Snapshot]:
        out = []
        for s in batch:
            try:
                c, reasons = sanitize(s)
            except Exception as e:  # a snapshot that is not even a Snapshot
                self._counts["dropped"] += 1
                log.error("unstorable snapshot dropped (%r): %r", e, s)
                continue
            if reasons:
                self._counts["bad"] += 1
                self._log_limited(f"bad:{c.device}", logging.WARNING,
                                  "device %s at %s: implausible values dropped, stored as bad: %s",
                                  c.device, c.ts, "; ".join(reasons))
            out.append(c)
        return out

    async def _finish(self, batch: list[Snapshot], fut: asyncio.Future) -> None:
        try:
            res: WriteResult = await fut
        except StorageError as e:
            self._mark_down(e)
            await asyncio.to_thread(self._spool_batch, batch)
            return
        self._account(res)

    def _account(self, res: WriteResult, replayed: bool = False) -> None:
        self._counts["written"] += res.written
        if replayed:
            self._counts["replayed"] += res.written
        if res.rejected or res.dropped:
            self._counts["rejected"] += len(res.rejected) + res.dropped

    def _mark_down(self, e: Exception) -> None:
        if self.store_up:
            level = logging.WARNING if isinstance(e, StoreUnavailable) else logging.ERROR
            log.log(level, "store down, spooling to %s: %s", self.spool.dir, e)
        self.store_up = False
        self._next_probe = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, _MAX_BACKOFF_S)

    def _mark_up(self) -> None:
        if not self.store_up:
            log.warning("store is back; spool holds %d bytes to replay", self.spool.bytes)
        self.store_up = True
        self._backoff = self.cfg.flush_interval_s

    async def _replay(self) -> None:
        """Replay spool segments oldest first until it is empty or the store fails."""
        while len(self.spool):
            seg, records = await asyncio.to_thread(self._oldest)
            done = self._replayed.get(seg, 0)  # records of this segment already written
            for i, payload in enumerate(records):
                if i < done:
                    continue
                try:
                    snaps = decode_batch(payload)
                    res = await asyncio.to_thread(self.store.write, snaps)
                except StorageError as e:
                    self._replayed[seg] = i
                    self._mark_down(e)
                    return
                except Exception as e:  # noqa: BLE001 - a poison record must not block the rest
                    await asyncio.to_thread(self._quarantine, seg, i, payload, e)
                    continue
                self._mark_up()
                self._account(res, replayed=True)
            self._replayed.pop(seg, None)
            await asyncio.to_thread(self._consume, seg)
            await asyncio.sleep(0)

    def _quarantine(self, seg: Path, index: int, payload: bytes, e: Exception) -> None:
        with self._spool_lock:
            self.spool.quarantine_record(seg, index, payload, f"{type(e).__name__}: {e}")
        self._counts["quarantined"] += 1

    def _oldest(self):
        with self._spool_lock:
            return self.spool.oldest()

    def _consume(self, seg: Path) -> None:
        with self._spool_lock:
            self.spool.consume(seg)

    def _spool_batch(self, batch: list[Snapshot]) -> None:
        if not batch:
            return
        try:
            with self._spool_lock:
                evicted = self.spool.append(encode_batch(batch))
                self._counts["spooled"] += len(batch)
            if evicted:
                self._log_limited("evicted", logging.ERROR, "spool over budget or disk full: %d oldest "
                                  "batches evicted to keep the newest", evicted)
        except (SpoolFull, OSError) as e:
            self._counts["dropped"] += len(batch)
            self._log_limited("spoolfull", logging.ERROR, "%d points DROPPED: %s", len(batch), e)
        except (TypeError, ValueError) as e:  # not serialisable: cannot be kept anywhere
            self._counts["dropped"] += len(batch)
            log.error("%d points DROPPED, cannot be spooled: %r", len(batch), e)
        if self.spool.alarm and not self._alarmed:
            log.error("spool %s above %.0f %% of %d bytes", self.spool.dir,
                      Spool.ALARM_FRACTION * 100, self.spool.max_bytes)
        self._alarmed = self.spool.alarm

    def _overflow(self) -> None:
        """Queue full: spill its oldest batch to the spool (synchronously: backpressure)."""
        self._counts["overflows"] += 1
        self._log_limited("overflow", logging.WARNING,
                          "telemetry queue full (%d): spilling the oldest %d snapshots to the spool",
                          len(self._q), self.batch_size)
        self._spool_batch(self._clean(self._take()))

    def _log_limited(self, key: str, level: int, msg: str, *args) -> None:
        now = time.monotonic()
        if now - self._last_log.get(key, -1e9) >= _LOG_EVERY_S:
            self._last_log[key] = now
            log.log(level, msg, *args)
