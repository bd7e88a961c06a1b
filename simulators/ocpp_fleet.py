"""The simulated OCPP stations of a site config, connecting to a central system.

:class:`OcppStations` makes one :class:`~simulators.ocpp_station.SimStation` per
``protocol: ocpp`` device (ratings and password from the config) and, once told the central
system's URL (:meth:`OcppStations.attach`), connects them — retrying until the service is up,
and reconnecting a station whose connection drops. The car physics is stepped by the site
(:meth:`step`, simulated seconds), so a simulated site's power balance includes the cars.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import zlib
from collections.abc import Iterable
from typing import Any

from drivers.config import Device
from simulators.ocpp_station import Car, Quirks, SimStation, StationModel

log = logging.getLogger(__name__)


class OcppStations:
    """Simulated stations for ``devices`` (only ``protocol: ocpp`` ones are taken).

    ``auto_sessions``: a car (seeded state of charge) is plugged into every station once it
    has connected; ``meter_interval_s`` [s wall] between MeterValues.
    """

    def __init__(self, devices: Iterable[Device], *, seed: int = 0, auto_sessions: bool = True,
                 meter_interval_s: float = 1.0, quirks: dict[str, Quirks] | None = None, clock: Any = None) -> None:
        self.devices = {d.id: d for d in devices if d.protocol == "ocpp"}
        self.seed, self.auto_sessions, self.meter_interval_s = seed, auto_sessions, meter_interval_s
        self.quirks = quirks or {}
        self.clock = clock  #: the site's clock: station timestamps
        self.ssl_context = None  #: for wss:// (security profile 2): a context trusting the service's CA
        self.stations: dict[str, SimStation] = {}
        self._tasks: list[asyncio.Task] = []

    def __len__(self) -> int:
        return len(self.devices)

    def power_w(self, device_id: str) -> float:
        s = self.stations.get(device_id)
        return s.model.power_w if s is not None else 0.0

    def step(self, dt_s: float) -> None:
        """Advance every car by ``dt_s`` simulated seconds."""
        for s in self.stations.values():
            s.model.step(dt_s)

    #: A changeover to or from island operation interrupts the supply this long [s] (as
    #: :attr:`simulators.devices.EvChargerModel.RESTART_S`).
    RESTART_S = 120.0

    def supply_lost(self) -> None:
        """The changeover to (or from) island operation interrupts the stations' supply."""
        for s in self.stations.values():
            s.model.power_w, s.model.restart_s = 0.0, self.RESTART_S

    def attach(self, url: str) -> None:
        """Connect every station to the central system at ``url`` (``.../ocpp/``), in the background."""
        for sid, d in self.devices.items():
            r = d.ratings
            model = StationModel(voltage_v=r.voltage_v, phases=r.phases, max_current_a=r.max_current_a or 32.0,
                                 min_current_a=r.min_current_a if r.min_current_a is not None else 6.0)
            s = SimStation(sid, d.version, url, password=d.ocpp.password, model=model, ssl_context=self.ssl_context,
                           quirks=self.quirks.get(sid), meter_interval_s=self.meter_interval_s, speed=0.0,
                           clock=self.clock)
            self.stations[sid] = s
            self._tasks.append(asyncio.create_task(self._keep_connected(s), name=f"ocpp-sim-{sid}"))

    async def _keep_connected(self, s: SimStation) -> None:
        rng = random.Random(self.seed + zlib.crc32(s.id.encode()))
        delay = 0.2
        while True:
            try:
                await s.connect()
                delay = 0.2
                if self.auto_sessions and s.model.car is None:
                    await s.plug(Car(soc=rng.uniform(0.2, 0.6)))
                await s.ws.wait_closed()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the service is not up (yet): retry
                log.debug("OCPP station %s: %s", s.id, e)
            for t in s._tasks:
                t.cancel()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def plug(self, device_id: str, car: Car) -> None:
        await self.stations[device_id].plug(car)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for s in self.stations.values():
            with contextlib.suppress(Exception):
                await s.close()
