"""One fleet over the Modbus driver fleet and the OCPP central system.

The control loop, liveness and the API ask a fleet for ``latest(id)`` and ``device(id)``;
this answers from whichever owns the device, so OCPP stations are chargers like any other.
"""
from __future__ import annotations

from typing import Any

from drivers.protocols import Snapshot


class CompositeFleet:
    """``modbus`` (a :class:`drivers.fleet.DriverFleet`) plus ``csms``
    (a :class:`vpp.csms.server.CentralSystem`); device ids are unique across both."""

    def __init__(self, modbus: Any, csms: Any) -> None:
        self.modbus, self.csms = modbus, csms

    def _owner(self, device_id: str) -> Any:
        return self.csms if device_id in self.csms.devices else self.modbus

    def latest(self, device_id: str) -> Snapshot | None:
        return self._owner(device_id).latest(device_id)

    def available(self, device_id: str) -> bool:
        return self._owner(device_id).available(device_id)

    def device(self, device_id: str) -> Any:
        return self._owner(device_id).device(device_id)

    @property
    def device_ids(self) -> list[str]:
        return list(self.modbus.device_ids) + list(self.csms.device_ids)

    async def poll_once(self) -> dict[str, Snapshot | None]:
        out = await self.modbus.poll_once()
        out.update({i: self.csms.latest(i) for i in self.csms.device_ids})
        return out

    async def stop(self) -> None:
        await self.csms.stop()
        await self.modbus.stop()
