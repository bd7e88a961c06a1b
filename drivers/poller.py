"""One poller per Modbus connection: polls its devices in turn, never overlapping.

Per device it keeps the last good snapshot and an availability flag. A poll retries
``device.retries`` times at once; a failed poll backs the device off exponentially
(interval × 2^(failures−1), at most ``backoff_max_s``). After ``fail_threshold`` failed
polls in a row the device is unavailable: one ``UNAVAILABLE`` snapshot is emitted and one
warning logged; the first good poll afterwards logs one recovery line. Start times are
staggered over one interval so that a town's pollers do not fire together.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from drivers.device import ModbusDevice
from drivers.modbus import ModbusError, ModbusLink
from drivers.protocols import Quality, Snapshot

log = logging.getLogger(__name__)

SnapshotCallback = Callable[[Snapshot], None]


@dataclass
class PollPolicy:
    fail_threshold: int = 3        #: failed polls in a row before "unavailable"
    backoff_max_s: float = 60.0    #: longest wait between polls of a failing device [s]
    stagger: bool = True           #: spread first polls over one interval


class _State:
    __slots__ = ("device", "failures", "due", "reason", "last_error")

    def __init__(self, device: ModbusDevice, due: float) -> None:
        self.device = device
        self.failures = 0
        self.due = due
        self.reason = ""
        self.last_error: Exception | None = None


class ConnectionPoller:
    """Polls every device of one :class:`ModbusLink` (see the module docstring)."""

    #: What a failed poll raises (a failure, not a bug); other protocols' links set their own.
    errors: tuple[type[Exception], ...] = (ModbusError,)

    def __init__(self, link: ModbusLink, devices: list[ModbusDevice],
                 policy: PollPolicy | None = None) -> None:
        self.link = link
        self.policy = policy or PollPolicy()
        now = time.monotonic()
        self._states = [_State(d, now) for d in devices]
        self._task: asyncio.Task | None = None
        self.on_snapshot: SnapshotCallback | None = None

    @property
    def devices(self) -> list[ModbusDevice]:
        return [s.device for s in self._states]

    async def poll_device(self, st: _State) -> Snapshot | None:
        """Poll one device with retries; returns the snapshot produced (``None``: still retrying)."""
        d = st.device
        attempts = 1 + d.config.retries
        for i in range(attempts):
            try:
                snap = await d.read()
                break
            except self.errors as e:
                st.last_error = e
        else:
            return self._failed(st, str(st.last_error))
        if st.failures:
            if not d.available:
                log.warning("%s: recovered after %d failed polls", d.id, st.failures)
            st.failures = 0
        d.available = True
        d.latest = snap
        st.due = time.monotonic() + d.config.poll_interval_s
        return snap

    def _failed(self, st: _State, reason: str) -> Snapshot | None:
        d = st.device
        d.last_error = reason
        st.failures += 1
        interval = d.config.poll_interval_s
        st.due = time.monotonic() + min(interval * 2 ** (st.failures - 1),
                                        max(self.policy.backoff_max_s, interval))
        if st.failures < self.policy.fail_threshold or not d.available:
            return None
        d.available = False
        log.warning("%s: unavailable after %d failed polls: %s", d.id, st.failures, reason)
        snap = Snapshot(d.id, d.kind, datetime.now(timezone.utc), {}, Quality.UNAVAILABLE, reason)
        d.latest = snap
        return snap

    def _emit(self, snap: Snapshot | None) -> None:
        if snap is not None and self.on_snapshot is not None:
            try:
                self.on_snapshot(snap)
            except Exception:  # a consumer's bug must not stop polling
                log.exception("snapshot callback failed for %s", snap.device)

    async def poll_once(self, deadline: float | None = None) -> list[Snapshot]:
        """Poll every device once now (ignoring back-off); returns the snapshots produced.

        With ``deadline`` (a ``time.monotonic()`` value) no device is started after it.
        """
        out = []
        for st in self._states:
            if deadline is not None and time.monotonic() >= deadline:
                break
            snap = await self.poll_device(st)
            self._emit(snap)
            if snap is not None:
                out.append(snap)
        return out

    async def run(self) -> None:
        """Poll forever at each device's interval (cancel the task to stop)."""
        now = time.monotonic()
        for st in self._states:
            jitter = random.uniform(0, st.device.config.poll_interval_s) if self.policy.stagger else 0
            st.due = now + jitter
        while True:
            st = min(self._states, key=lambda s: s.due)
            delay = st.due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                self._emit(await self.poll_device(st))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # unexpected (decode bug): count as a failure, keep going
                log.exception("%s: poll crashed", st.device.id)
                self._emit(self._failed(st, f"internal error: {e}"))

    def start(self, on_snapshot: SnapshotCallback | None = None) -> None:
        self.on_snapshot = on_snapshot
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"poll {self.link.key}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self.link.close()
