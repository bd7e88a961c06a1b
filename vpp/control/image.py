"""The process image: what the control loop knows about the site in one step, read once.

Each dispatch step starts by reading the latest snapshot of every device the loop acts on
(batteries, EV chargers, PV inverters, the grid meter: ``config.grid_meter()``) from the
driver fleet (or, without a fleet, from the store) exactly once, and judging each with
:func:`vpp.control.freshness.usable`. Everything that step decides (:mod:`vpp.control.decide`,
:mod:`vpp.control.ev`, :mod:`vpp.control.gridlimit`) works on this frozen image, so every part
of the decision sees the same readings (the OpenEMS process-image rule).

Units as in the snapshots: W (battery > 0 discharge, grid > 0 import), SoC [fraction].
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol

from drivers.protocols import Snapshot
from vpp.config import Device, SiteConfig
from vpp.control.freshness import usable
from vpp.control.outage import ISLAND_FIELD, OutageDetector

#: Device kinds the control loop reads every step (plus the grid meter).
CONTROLLED_KINDS = ("battery", "ev_charger", "pv")


class SnapshotSource(Protocol):
    """Where the latest snapshot of a device comes from (the driver fleet)."""

    def latest(self, device_id: str) -> Snapshot | None: ...


@dataclass(frozen=True)
class Reading:
    """One device's snapshot as read this step: ``raw`` (None: none yet), ``snap`` the same
    snapshot when usable for control (else None) and ``why`` it is not ('' when usable)."""

    device: str
    raw: Snapshot | None
    snap: Snapshot | None
    why: str

    def value(self, field_: str) -> float:
        """Usable reading of ``field_`` (NaN when unusable, missing or not finite)."""
        if self.snap is None:
            return math.nan
        v = self.snap.values.get(field_, math.nan)
        return v if v is not None and math.isfinite(v) else math.nan


_MISSING = Reading("", None, None, "no reading")


@dataclass(frozen=True)
class ProcessImage:
    """The site at ``at`` (UTC) as one control step sees it.

    Attributes
    ----------
    at : datetime
        Time of the step; usability is judged at it.
    readings : mapping
        :class:`Reading` per device id (batteries, EV chargers, PV, grid meter).
    meter : str or None
        Id of the grid meter (``config.grid_meter()``), None without one.
    grid_ok : bool
        The grid is up: forced by the caller (``outage``) or else the debounced state of the
        :class:`~vpp.control.outage.OutageDetector` fed with this step's grid-meter sample and
        the inverters' islanding flags (no detector, no usable meter = up).
    """

    at: datetime
    readings: Mapping[str, Reading] = field(default_factory=dict)
    meter: str | None = None
    grid_ok: bool = True

    def reading(self, device_id: str | None) -> Reading:
        """The reading of ``device_id`` (an unusable "no reading" one if it was not read)."""
        if device_id is None:
            return Reading("", None, None, "no grid meter")
        return self.readings.get(device_id, _MISSING)

    def snapshot(self, device_id: str) -> tuple[Snapshot | None, str]:
        """``(usable snapshot, '')`` or ``(None, why not)``, as :func:`usable` says."""
        r = self.reading(device_id)
        return r.snap, r.why

    @property
    def meter_reading(self) -> Reading:
        return self.reading(self.meter)

    @property
    def grid_w(self) -> float:
        """Usable grid power [W] (> 0 import), NaN without one."""
        return self.meter_reading.value("power_w")

    def soc(self, battery_id: str) -> float:
        """Usable SoC [fraction] of a battery, NaN without one."""
        return self.reading(battery_id).value("soc")

    def socs(self, batteries: list[Device]) -> dict[str, float]:
        """Usable SoC [fraction] per battery (NaN where unusable)."""
        return {b.id: self.soc(b.id) for b in batteries}


def read_image(config: SiteConfig, now: datetime, *, fleet: SnapshotSource | None = None, store: Any = None,
               max_age_s: float, outage: bool | None = None, detector: OutageDetector | None = None,
               kinds: Sequence[str] = CONTROLLED_KINDS) -> ProcessImage:
    """Read every controlled device once and build the :class:`ProcessImage` at ``now``.

    Parameters
    ----------
    fleet : SnapshotSource or None
        Latest snapshots (``latest(id)``); the source whenever given.
    store : Store or None
        Without a fleet, the latest stored snapshots (``latest(id) -> {id: Snapshot}``).
    max_age_s : float
        A snapshot older than this [s] at ``now`` (or not GOOD) is unusable.
    outage : bool or None
        Forced grid state (None: ask ``detector``).
    detector : OutageDetector or None
        Fed with the grid meter's usable sample (a new one each time the meter's timestamp
        moves) and the batteries' islanding flags; None: the grid is taken as up.
    kinds : sequence of str
        Device kinds to read (the grid meter is always read).
    """
    meter = config.grid_meter()
    ids = [d.id for kind in kinds for d in config.devices_of(kind)]
    if meter is not None and meter.id not in ids:
        ids.append(meter.id)
    readings = {}
    for dev_id in ids:
        raw = fleet.latest(dev_id) if fleet is not None else None
        if raw is None and fleet is None and store is not None:
            raw = store.latest(dev_id).get(dev_id)
        snap, why = usable(raw, now, max_age_s)
        readings[dev_id] = Reading(dev_id, raw, snap, why)
    if outage is not None:
        grid_ok = not outage
    elif detector is not None:
        m = readings.get(meter.id) if meter is not None else None
        msnap = m.snap if m is not None else None
        flags = [r.snap for k, r in readings.items() if r.snap is not None and ISLAND_FIELD in r.snap.values
                 and k != (meter.id if meter is not None else None)]
        islanded = any(Reading("", s, s, "").value(ISLAND_FIELD) >= 0.5 for s in flags)
        ts = msnap.ts if msnap is not None else max((s.ts for s in flags), default=None)
        grid_ok = not detector.update(ts, msnap.values if msnap is not None else None, islanded)
    else:
        grid_ok = True
    return ProcessImage(now, MappingProxyType(readings), meter.id if meter is not None else None, grid_ok)
