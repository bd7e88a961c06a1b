"""Capability protocols and the snapshot type every driver produces.

Control code (controller, optimiser inputs, API) depends only on these protocols, never on a
vendor driver. Sign convention: see :mod:`drivers` (battery + = discharge, grid + = import).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from drivers.fields import fields_of


class Quality(str, enum.Enum):
    """Quality flag attached to every snapshot."""

    GOOD = "good"          #: decoded, in range
    BAD = "bad"            #: decoded but non-finite or outside physical limits
    STALE = "stale"        #: values frozen / not updated by the device
    UNAVAILABLE = "unavailable"  #: device did not answer (after retries)


class DeviceKind(str, enum.Enum):
    PV = "pv"
    BATTERY = "battery"
    EV_CHARGER = "ev_charger"
    METER = "meter"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One timestamped set of decoded readings from one device.

    Attributes
    ----------
    device : str
        Device id from the site config.
    kind : DeviceKind
    ts : datetime
        UTC time at which the device was read (not write time to storage).
    values : dict[str, float]
        Field name -> value in SI units (W, Wh, V, A, Hz, fraction for ``soc``).
        Field names per kind are listed in :data:`FIELDS`.
    quality : Quality
    reason : str
        Why quality is not GOOD (empty when GOOD).
    """

    device: str
    kind: DeviceKind
    ts: datetime
    values: dict[str, float] = field(default_factory=dict)
    quality: Quality = Quality.GOOD
    reason: str = ""


#: Canonical field names per device kind -> meaning (SI units; sign convention from
#: :mod:`drivers`). Built from the field table :mod:`drivers.fields` (units and ranges there).
FIELDS: dict[DeviceKind, dict[str, str]] = {k: fields_of(k.value) for k in DeviceKind}


@runtime_checkable
class Device(Protocol):
    id: str
    kind: DeviceKind

    async def read(self) -> Snapshot:
        """Read and decode the device's measurements (one poll)."""
        ...


@runtime_checkable
class PvInverter(Device, Protocol):
    async def set_power_limit(self, watts: float, revert_s: float | None = None) -> None:
        """Limit AC active power to ``watts`` [W] (0 … rating); revert after ``revert_s`` [s]."""
        ...


@runtime_checkable
class Battery(Device, Protocol):
    async def set_power(self, watts: float, revert_s: float | None = None) -> None:
        """Command AC power [W] (> 0 discharge, < 0 charge); revert to idle after ``revert_s``."""
        ...


@runtime_checkable
class EvCharger(Device, Protocol):
    async def set_current_limit(self, amps: float) -> None:
        """Set the charging current limit [A] (0 pauses charging; else within min..max)."""
        ...


@runtime_checkable
class V2hCharger(EvCharger, Protocol):
    """An EV charger that can also discharge the car into the home (V2H)."""

    async def set_discharge_power(self, watts: float) -> None:
        """Discharge the car into the home at ``watts`` [W] (> 0; 0 stops)."""
        ...


@runtime_checkable
class Meter(Device, Protocol):
    """Read-only: a grid or sub-meter. ``power_w`` > 0 = import."""
