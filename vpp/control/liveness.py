"""Device liveness: the last good reading per device, lost devices and their alarms.

The rule itself (when a device is lost) is :func:`vpp.control.freshness.lost`; this module
keeps what it is applied to (each device's last GOOD snapshot, fed by the poller callback
:meth:`Liveness.on_snapshot`) and raises/clears the ``device:<id>``, ``store`` and ``spool`` alarms once
a second (:meth:`Liveness.monitor`). Polling runs on the wall clock, so the lost-after limit
is wall seconds × ``time_scale`` (controller-clock seconds per wall second).
"""
from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from drivers.protocols import Quality, Snapshot
from vpp.config import SiteConfig
from vpp.control.alarms import Alarms
from vpp.control.freshness import LOST_MIN_S, lost, lost_after_s
from vpp.control.reserve import capacity_weighted

log = logging.getLogger(__name__)


class Liveness:
    """Last good readings and the lost-device rule over them.

    Parameters
    ----------
    config : SiteConfig
    latest : callable
        ``device id -> Snapshot | None``: the device's latest poll, good or not (the fleet's).
    time_scale : float
        Controller-clock seconds per wall second [-] (the simulated clock's speed, else 1).
    driver_alarms : callable, optional
        ``() -> {device id: {key: reason}}``: conditions a driver found itself (an ECHONET
        device whose mode reverted on its own, a property map changed at run time), raised as
        ``device:<id>:<key>`` warnings while the driver reports them.
    """

    def __init__(self, config: SiteConfig, latest: Callable[[str], Snapshot | None],
                 time_scale: float = 1.0,
                 driver_alarms: Callable[[], Mapping[str, Mapping[str, str]]] | None = None) -> None:
        self.config = config
        self.driver_alarms = driver_alarms
        self._driver_raised: set[str] = set()
        self.latest = latest
        self.time_scale = time_scale
        self.last_good: dict[str, Snapshot] = {}
        self.readings = 0  #: snapshots received (the status stream pushes when this changes)
        self.newest: Snapshot | None = None  #: the newest good reading (stamped on the runtime's clock)
        self.newest_wall: datetime | None = None  #: wall time it arrived (reading-to-screen latency)

    def on_snapshot(self, snap: Snapshot) -> None:
        """Poller callback: remember a GOOD snapshot, count every one."""
        if snap.quality is Quality.GOOD:
            self.last_good[snap.device] = snap
            self.newest = snap
            self.newest_wall = datetime.now(timezone.utc)
        self.readings += 1

    def lost(self, dev_id: str, now: datetime) -> tuple[bool, str]:
        """Whether ``dev_id`` has no recent good reading at ``now``, and why."""
        limit = lost_after_s(self.config.device(dev_id).poll_interval_s, self.time_scale)
        return lost(self.latest(dev_id), self.last_good.get(dev_id), now, limit)

    def live(self, dev_id: str, now: datetime) -> Snapshot | None:
        """The last good reading of a device that is not lost, else None."""
        return None if self.lost(dev_id, now)[0] else self.last_good.get(dev_id)

    def soc_of(self, dev_id: str) -> float:
        """Last good SoC [fraction] of a battery; NaN when unknown."""
        s = self.last_good.get(dev_id)
        return float(s.values.get("soc", math.nan)) if s is not None else math.nan

    def site_telemetry(self) -> tuple[float, float]:
        """(site battery power [W] > 0 discharge, capacity-weighted SoC [fraction], 0 when
        unknown) from the latest good readings (what the OpenADR VEN reports)."""
        power = 0.0
        socs: dict[str, float] = {}
        caps: dict[str, float] = {}
        for b in self.config.devices_of("battery"):
            snap = self.last_good.get(b.id)
            if snap is None:
                continue
            power += float(snap.values.get("power_w", 0.0))
            socs[b.id], caps[b.id] = float(snap.values.get("soc", math.nan)), b.ratings.capacity_wh
        soc = capacity_weighted(socs, caps)
        return power, (soc if math.isfinite(soc) else 0.0)

    async def first_readings(self, timeout_s: float) -> None:
        """Wait until every battery answered once (the first plan needs their SoC), at most
        ``timeout_s`` [s]."""
        want = {b.id for b in self.config.devices_of("battery")}
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while not want <= set(self.last_good) and loop.time() < end:
            await asyncio.sleep(0.05)

    def check(self, alarms: Alarms, now: datetime, store: Mapping[str, Any] | None = None) -> None:
        """Raise/clear ``device:<id>`` (critical for batteries and meters) and, given the
        telemetry pipeline's metrics ``store``, the ``store`` alarm."""
        for d in self.config.devices:
            is_lost, why = self.lost(d.id, now)
            key = f"device:{d.id}"
            if is_lost:
                sev = "critical" if d.kind in ("battery", "meter") else "warning"
                alarms.raise_(key, f"{d.id} ({d.kind}) lost: {why}", now, sev)
            else:
                alarms.clear(key, now, "reading again")
        if self.driver_alarms is not None:
            self._check_driver_alarms(alarms, now)
        if store is not None and not store.get("store_up"):
            alarms.raise_("store", f"telemetry store unavailable; spooling "
                                   f"({store.get('spool_bytes', 0)} bytes)", now, "critical")
        else:
            alarms.clear("store", now, "store answering")
        self._check_spool(alarms, now, store or {})

    def _check_driver_alarms(self, alarms: Alarms, now: datetime) -> None:
        raised = set()
        for dev_id, found in self.driver_alarms().items():
            for key, reason in found.items():
                alarms.raise_(f"device:{dev_id}:{key}", f"{dev_id}: {reason}", now, "warning")
                raised.add(f"device:{dev_id}:{key}")
        for key in self._driver_raised - raised:
            alarms.clear(key, now, "driver reports it no more")
        self._driver_raised = raised

    @staticmethod
    def _check_spool(alarms: Alarms, now: datetime, store: Mapping[str, Any]) -> None:
        """The ``spool`` alarm: critical while appends fail or old data is evicted (disk full,
        over budget); warning while the spool is above 80 % or files wait in its quarantine
        directory (cleared once an operator moved them away)."""
        fault, quarantine = store.get("spool_fault"), store.get("spool_quarantine", 0)
        if fault:
            alarms.raise_("spool", f"telemetry spool: {fault}", now, "critical")
        elif quarantine:
            alarms.raise_("spool", f"telemetry spool: {quarantine} damaged or undecodable file(s) in quarantine",
                          now, "warning")
        elif store.get("spool_alarm"):
            alarms.raise_("spool", f"telemetry spool above 80 % of its budget ({store.get('spool_bytes', 0)} bytes)",
                          now, "warning")
        else:
            alarms.clear("spool", now, "spool healthy")

    async def monitor(self, alarms: Alarms, now: Callable[[], datetime],
                      store: Callable[[], Mapping[str, Any] | None]) -> None:
        """:meth:`check` once a second, after every device had a chance to answer."""
        await asyncio.sleep(LOST_MIN_S)
        while True:
            try:
                self.check(alarms, now(), store())
            except Exception:  # noqa: BLE001 - the monitor must outlive one bad pass
                log.exception("liveness check failed")
            await asyncio.sleep(1.0)
