"""All devices of a site: one :class:`~drivers.poller.ConnectionPoller` per connection.

Usage::

    fleet = DriverFleet(config)                  # or DriverFleet(config, clock=sim_clock)
    await fleet.start(on_snapshot=store.put)   # background polling
    fleet.latest("bat1"); fleet.available("bat1")
    await fleet.device("bat1").set_power(-3000, revert_s=120)   # validated, verified write
    await fleet.stop()
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from drivers.config import Device as DeviceConfig
from drivers.device import ModbusDevice, StalePolicy, make_device
from drivers.echonet import poller as echonet_poller
from drivers.echonet.transport import EchonetSocket
from drivers.modbus import ModbusLink, link_key
from drivers.poller import ConnectionPoller, PollPolicy, SnapshotCallback
from drivers.protocols import Snapshot


class Clock(Protocol):
    def now(self) -> datetime: ...


class FleetConfig(Protocol):
    """What the fleet needs of a site config (``vpp.config.SiteConfig`` is one)."""

    @property
    def devices(self) -> Sequence[DeviceConfig]: ...


class _ClockedPoller(ConnectionPoller):
    """Poller whose snapshots carry ``clock.now()`` instead of the wall-clock read time."""

    def __init__(self, link: ModbusLink, devices: list[ModbusDevice], policy: PollPolicy | None,
                 clock: Clock) -> None:
        super().__init__(link, devices, policy)
        self.clock = clock

    def _stamp(self, snap: Snapshot | None, device: ModbusDevice) -> Snapshot | None:
        if snap is None:
            return None
        snap = replace(snap, ts=self.clock.now())
        device.latest = snap
        return snap

    async def poll_device(self, st) -> Snapshot | None:
        return self._stamp(await super().poll_device(st), st.device)

    def _failed(self, st, reason: str) -> Snapshot | None:
        return self._stamp(super()._failed(st, reason), st.device)


class DriverFleet:
    """Drivers and pollers for every device in ``config`` (several device ids may share a link).

    Parameters
    ----------
    config : FleetConfig
        Anything with a ``devices`` sequence of :class:`drivers.config.Device`, e.g. the
        site config.
    policy : PollPolicy, optional
        Failure threshold and back-off.
    stale : StalePolicy, optional
        Frozen-value detection.
    clock : object with ``now() -> datetime`` (UTC), optional
        Stamps every snapshot (``Snapshot.ts``) with ``clock.now()`` at poll time instead of
        the wall clock, and times frozen-value detection (``stale.stale_after_s``) on it, so
        a run on simulated time (:class:`simulators.clock.SimClock`) sees readings of its own
        time and flags a frozen device after the same simulated time at any speed. Poll
        cadence and back-off stay on the monotonic clock.
    """

    def __init__(self, config: FleetConfig, policy: PollPolicy | None = None,
                 stale: StalePolicy | None = None, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock
        self._devices: dict[str, ModbusDevice] = {}
        by_link: dict[str, list] = {}
        echonet = [d for d in config.devices if d.protocol == "echonet_lite"]
        for dcfg in config.devices:
            if getattr(dcfg, "protocol", "modbus") != "modbus":
                continue  # other protocols have their own fleet (OCPP: the central system; ECHONET Lite)
            by_link.setdefault(link_key(dcfg.connection), []).append(dcfg)
        self.pollers: list[ConnectionPoller] = []
        for cfgs in by_link.values():
            link = ModbusLink(cfgs[0].connection, max(c.timeout_s for c in cfgs))
            devs = [make_device(c, link, stale, clock.now if clock is not None else None) for c in cfgs]
            for d in devs:
                self._devices[d.id] = d
            self.pollers.append(ConnectionPoller(link, devs, policy) if clock is None
                                else _ClockedPoller(link, devs, policy, clock))
        #: the one UDP socket of the ECHONET Lite devices (opened by start/poll_once)
        self.echonet = EchonetSocket() if echonet else None
        self._echonet_host = echonet_poller.bind_host(echonet) if echonet else ""
        if self.echonet is not None:
            for link, devs in echonet_poller.build_nodes(echonet, self.echonet, stale,
                                                         clock.now if clock is not None else None):
                for d in devs:
                    self._devices[d.id] = d
                p = ConnectionPoller(link, devs, policy) if clock is None else _ClockedPoller(link, devs, policy, clock)
                p.errors = echonet_poller.ERRORS
                self.pollers.append(p)

    async def _open(self) -> None:
        if self.echonet is not None and self.echonet.transport is None:
            await self.echonet.open(self._echonet_host)

    async def start(self, on_snapshot: SnapshotCallback | None = None) -> None:
        """Start background polling; ``on_snapshot`` gets every snapshot produced."""
        await self._open()
        for p in self.pollers:
            p.start(on_snapshot)

    async def stop(self) -> None:
        """Stop polling and close every connection."""
        # all at once: a town has hundreds of pollers, one loop turn each would add up
        await asyncio.gather(*(p.stop() for p in self.pollers))
        if self.echonet is not None:
            self.echonet.close()

    async def poll_once(self) -> dict[str, Snapshot | None]:
        """Poll every device once now (connections in parallel); latest snapshot per device."""
        await self._open()
        await asyncio.gather(*(p.poll_once() for p in self.pollers))
        return {i: d.latest for i, d in self._devices.items()}

    def latest(self, device_id: str) -> Snapshot | None:
        """Last snapshot of ``device_id`` (good, stale, bad or the unavailable marker)."""
        return self._devices[device_id].latest

    def device_alarms(self) -> dict[str, dict[str, str]]:
        """``{device id: {key: reason}}`` of the conditions drivers report themselves
        (ECHONET: ``mode_reverted``, ``property_map_changed``); devices without any left out."""
        return {i: dict(a) for i, d in self._devices.items() if (a := getattr(d, "alarms", None))}

    def available(self, device_id: str) -> bool:
        return self._devices[device_id].available

    def device(self, device_id: str) -> ModbusDevice:
        """The driver; implements the Protocol of its kind (Battery, PvInverter, …)."""
        return self._devices[device_id]

    @property
    def device_ids(self) -> list[str]:
        return list(self._devices)

    async def __aenter__(self) -> "DriverFleet":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()
