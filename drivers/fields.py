"""The telemetry field table: one declaration per canonical field a driver reports.

Each row gives the field's name, unit, plausible range and meaning, and the device kinds
that report it (with the kind's own sign convention where it differs). The table drives:

* :data:`drivers.protocols.FIELDS`, the canonical field list per device kind;
* the storage sanitizer's plausibility limits (:mod:`vpp.storage.validate`);
* device-side value checks (:class:`drivers.device.ModbusDevice` marks a decoded SoC
  outside its range BAD).

The plausible range is wide on purpose: a value outside it is a unit or decoding mistake
(SoC 2.5 read as a percentage, 3 GW from a house), never a reading to store or act on.
Rated limits of one device live in its ratings (:class:`drivers.config.Ratings`).

Units: SI (W, Wh, V, A, Hz); ``fraction`` is 0..1; ``""`` is a dimensionless code.
Sign convention as in :mod:`drivers`: battery power > 0 = discharge, meter power > 0 = import.
Kinds are given by their values (``"pv"``, ``"battery"``, ``"ev_charger"``, ``"meter"``),
which :class:`drivers.protocols.DeviceKind` wraps.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

PV, BATTERY, EV_CHARGER, METER = "pv", "battery", "ev_charger", "meter"

#: Plausible range [SI] of a decoded value whose name is not in the table.
UNLISTED_RANGE: tuple[float, float] = (-1e15, 1e15)


@dataclass(frozen=True, slots=True)
class TelemetryField:
    """One canonical telemetry field.

    Attributes
    ----------
    name : str
        Field name in snapshots, register maps and the store (``power_w``).
    unit : str
        SI unit symbol (``W``, ``Wh``, ``V``, ``A``, ``Hz``), ``fraction`` (0..1) or ``""``.
    lo, hi : float
        Plausible range [unit], inclusive.
    description : str
        Meaning, with the unit in brackets.
    kinds : tuple of str
        Device kinds whose drivers report this field canonically.
    per_kind : mapping of str to str
        Kind-specific meaning where it differs from ``description`` (sign conventions).
    """

    name: str
    unit: str
    lo: float
    hi: float
    description: str
    kinds: tuple[str, ...]
    per_kind: Mapping[str, str] = field(default_factory=dict)

    @property
    def range(self) -> tuple[float, float]:
        return self.lo, self.hi

    def describe(self, kind: str) -> str:
        """The field's meaning for a device of ``kind``."""
        return self.per_kind.get(kind, self.description)

    def plausible(self, value: float) -> bool:
        """``lo <= value <= hi`` (False for NaN)."""
        return self.lo <= value <= self.hi


_LIFETIME_WH = 1e13   # 10 TWh: no counter of a town's device gets there
_POWER_W = 1e8        # 100 MW: far above any device of a town

#: Every canonical field, in the order drivers list them.
TABLE: tuple[TelemetryField, ...] = (
    TelemetryField(
        "power_w", "W", -_POWER_W, _POWER_W, "AC active power [W]",
        (PV, BATTERY, EV_CHARGER, METER),
        {PV: "AC active power produced [W], >= 0",
         BATTERY: "AC power [W], > 0 discharge, < 0 charge",
         EV_CHARGER: "charging power [W], >= 0 (a V2H unit discharging into the home: < 0)",
         METER: "active power [W], > 0 import"}),
    TelemetryField("energy_wh", "Wh", 0.0, _LIFETIME_WH, "lifetime AC energy produced [Wh]", (PV,)),
    TelemetryField("power_limit_w", "W", 0.0, _POWER_W, "active-power limit in force [W]", (PV,)),
    # fraction: 2.5 (250 %) is a unit mistake
    TelemetryField("soc", "fraction", 0.0, 1.0, "state of charge [fraction 0..1]", (BATTERY,)),
    TelemetryField("capacity_wh", "Wh", 0.0, 1e9, "usable nominal capacity [Wh]", (BATTERY,)),
    TelemetryField("setpoint_w", "W", -_POWER_W, _POWER_W, "power setpoint in force [W], > 0 discharge",
                   (BATTERY,)),
    TelemetryField("charge_energy_wh", "Wh", 0.0, _LIFETIME_WH, "lifetime energy charged [Wh]", (BATTERY,)),
    TelemetryField("discharge_energy_wh", "Wh", 0.0, _LIFETIME_WH, "lifetime energy discharged [Wh]",
                   (BATTERY,)),
    TelemetryField("state", "", 1.0, 6.0, "IEC 61851 state as number: A=1 … F=6", (EV_CHARGER,)),
    TelemetryField("plugged", "", 0.0, 1.0, "1 if a vehicle is plugged in", (EV_CHARGER,)),
    TelemetryField("current_limit_a", "A", 0.0, 1000.0, "current limit in force [A]", (EV_CHARGER,)),
    TelemetryField("session_energy_wh", "Wh", 0.0, 1e9, "energy delivered in this session [Wh]",
                   (EV_CHARGER,)),
    TelemetryField("import_energy_wh", "Wh", 0.0, _LIFETIME_WH, "lifetime imported energy [Wh]", (METER,)),
    TelemetryField("export_energy_wh", "Wh", 0.0, _LIFETIME_WH, "lifetime exported energy [Wh]", (METER,)),
    TelemetryField("voltage_v", "V", 0.0, 2000.0, "phase-1 voltage [V]", (METER,)),
    TelemetryField("frequency_hz", "Hz", 0.0, 100.0, "grid frequency [Hz]", (METER,)),
)

#: The table by field name.
BY_NAME: Mapping[str, TelemetryField] = MappingProxyType({f.name: f for f in TABLE})


def fields_of(kind: str) -> dict[str, str]:
    """Canonical fields of a device ``kind`` as ``{name: meaning}``, in table order."""
    return {f.name: f.describe(kind) for f in TABLE if kind in f.kinds}


def plausible_ranges() -> dict[str, tuple[float, float]]:
    """``{name: (lo, hi)}`` for every field of the table [SI]."""
    return {f.name: f.range for f in TABLE}


def plausible_range(name: str) -> tuple[float, float]:
    """Plausible range of field ``name``; :data:`UNLISTED_RANGE` for a field not in the table."""
    f = BY_NAME.get(name)
    return f.range if f is not None else UNLISTED_RANGE
