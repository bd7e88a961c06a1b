"""What the central system knows about one charge point, and how OCPP readings become a snapshot.

A :class:`StationState` is updated by the message handlers (boot, status, meter values,
transactions) and read by the control loop through :meth:`StationState.snapshot` — the same
:class:`drivers.protocols.Snapshot` of kind ``ev_charger`` a Modbus EVSE produces
(``power_w``, ``plugged``, ``state``, ``current_limit_a``, ``session_energy_wh``).

Readings are stamped with the central system's clock when they arrive: station clocks drift
(a skewed ``timestamp`` is counted, never trusted). A MeterValues message that lacks a
measurand keeps the last known value of it rather than zeroing it.
Units: W, Wh, A, V, s.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drivers.protocols import DeviceKind, Quality, Snapshot

#: OCPP measurand -> (our field, SI scale per unit prefix).
MEASURANDS = {
    "Energy.Active.Import.Register": "energy_wh",
    "Power.Active.Import": "power_w",
    "Current.Import": "current_a",
    "Current.Offered": "offered_a",
    "Voltage": "voltage_v",
    "SoC": "soc",
}
_UNIT_SCALE = {"Wh": 1.0, "kWh": 1000.0, "W": 1.0, "kW": 1000.0, "A": 1.0, "V": 1.0, "Percent": 0.01}
#: Connector status (1.6 ChargePointStatus / 2.0.1 ConnectorStatus) -> (plugged, IEC 61851 state 1..6).
STATUS = {
    "Available": (0.0, 1.0), "Preparing": (1.0, 2.0), "Charging": (1.0, 3.0), "SuspendedEV": (1.0, 2.0),
    "SuspendedEVSE": (1.0, 2.0), "Finishing": (1.0, 2.0), "Reserved": (0.0, 1.0), "Unavailable": (0.0, 1.0),
    "Faulted": (0.0, 6.0), "Occupied": (1.0, 2.0),
}
#: Statuses that take a station out of service: no usable reading until it reports another one.
FAULT_STATUSES = ("Faulted", "Unavailable")
#: A station timestamp further than this from ours is counted as skewed [s].
SKEW_S = 300.0


def parse_sampled_values(samples: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Our fields from one MeterValue's ``sampledValue`` list (camelCase or snake_case keys;
    1.6 values are strings, 2.0.1 numbers). Per-phase values of power are summed and of
    current the largest kept, unless a total (no phase) is present; unparseable values and
    unknown measurands are skipped. Units: W, Wh, A, V, soc as a fraction."""
    totals: dict[str, float] = {}
    phases: dict[str, list[float]] = {}
    for s in samples:
        measurand = s.get("measurand") or "Energy.Active.Import.Register"
        name = MEASURANDS.get(measurand)
        if name is None:
            continue
        unit = s.get("unit") or (s.get("unitOfMeasure") or s.get("unit_of_measure") or {}).get("unit")
        try:
            v = float(s.get("value"))
        except (TypeError, ValueError):
            continue
        if not math.isfinite(v):
            continue
        v *= _UNIT_SCALE.get(unit or "", 1.0) * (0.01 if name == "soc" and unit is None else 1.0)
        if s.get("phase"):
            phases.setdefault(name, []).append(v)
        else:
            totals[name] = v
    for name, vals in phases.items():
        if name not in totals and name != "voltage_v":
            totals[name] = max(vals) if name in ("current_a", "offered_a") else sum(vals)
        elif name == "voltage_v" and name not in totals:
            totals[name] = vals[0]
    return totals


@dataclass
class StationState:
    """The central system's view of one charge point ``id`` (UTC times)."""

    id: str
    version: str
    connected: bool = False
    booted: bool = False
    vendor: str = ""
    model: str = ""
    status: str = "Unavailable"
    transaction_id: str | None = None  #: running transaction (str for both versions)
    id_tag: str | None = None  #: who started it (resumed with the same tag after a pause)
    meter_start_wh: float | None = None
    carried_wh: float = 0.0  #: delivered in earlier transactions of this plug-in (pause, reboot) [Wh]
    readings: dict[str, float] = field(default_factory=dict)
    limit_a: float | None = None  #: the limit in force that the station accepted [A]
    limit_until: datetime | None = None  #: when that limit's profile ends (then the safe default applies)
    safe_limit_a: float | None = None  #: the TxDefaultProfile limit installed [A]
    paused_by_stop: bool = False  #: the transaction was stopped to pause (station rejects 0)
    rate_units: tuple[str, ...] = ("A",)  #: ChargingScheduleAllowedChargingRateUnit ("A", "W")
    profiles_rejected: bool = False  #: the station refuses charging profiles (fallback key in use)
    needs: dict[str, Any] = field(default_factory=dict)  #: last NotifyEVChargingNeeds, parsed
    last_seen: datetime | None = None
    counters: dict[str, int] = field(default_factory=dict)
    fault: str | None = None  #: the out-of-service status reported (Faulted/Unavailable + error code)

    def count(self, what: str, n: int = 1) -> None:
        self.counters[what] = self.counters.get(what, 0) + n

    def on_status(self, status: str, error_code: str | None = None) -> None:
        self.status = status
        self.fault = None
        if status in FAULT_STATUSES:
            self.fault = status + (f" ({error_code})" if error_code not in (None, "NoError") else "")
        if STATUS.get(status, (0.0, 1.0))[0] < 0.5 and not self.paused_by_stop:
            self.readings["power_w"] = 0.0
            if status == "Available":  # the car left: the next plug-in is a new session
                self.carried_wh, self.id_tag, self.needs = 0.0, None, {}

    def on_meter(self, samples: Iterable[Mapping[str, Any]], station_ts: datetime | None, now: datetime) -> None:
        """Merge one MeterValue; missing measurands keep their last value (counted)."""
        self.count("meter_values")
        got = parse_sampled_values(samples)
        if not got:
            self.count("meter_empty")
            return
        if "power_w" not in got or "energy_wh" not in got:
            self.count("meter_partial")
        if station_ts is not None and abs((station_ts - now).total_seconds()) > SKEW_S:
            self.count("clock_skew")
        if "energy_wh" in got and self.transaction_id is not None and self.meter_start_wh is None:
            self.meter_start_wh = got["energy_wh"]
        self.readings.update(got)
        self.last_seen = now

    def start_transaction(self, tx_id: str, id_tag: str | None, meter_start_wh: float | None) -> None:
        """A transaction began; one still running (a station that rebooted and started a new
        transaction for the same car) ends here, its energy carried into the session."""
        if self.transaction_id is not None and self.transaction_id != tx_id:
            self.count("transactions_replaced")
            self.end_transaction()
        self.transaction_id, self.id_tag = tx_id, id_tag or self.id_tag
        self.meter_start_wh = meter_start_wh
        self.paused_by_stop = False
        self.limit_a = self.limit_until = None  # a new transaction starts under the default profile

    def end_transaction(self) -> None:
        self.carried_wh += self.session_energy_wh(own=True)
        self.transaction_id, self.meter_start_wh = None, None
        self.readings["power_w"] = 0.0

    def session_energy_wh(self, own: bool = False) -> float:
        """Energy delivered since plug-in [Wh] (``own``: in the running transaction only)."""
        e = self.readings.get("energy_wh")
        tx = 0.0 if e is None or self.meter_start_wh is None else max(e - self.meter_start_wh, 0.0)
        return tx if own else tx + self.carried_wh

    def limit_in_force(self, now: datetime) -> float | None:
        """The current limit the station works to now [A]: the accepted profile's until it
        ends, then the safe default; 0 while paused by stopping the transaction."""
        if self.paused_by_stop:
            return 0.0
        if self.limit_a is not None and (self.limit_until is None or now < self.limit_until):
            return self.limit_a
        return self.safe_limit_a

    def snapshot(self, now: datetime) -> Snapshot:
        """The ``ev_charger`` snapshot at ``now`` (UNAVAILABLE while disconnected)."""
        if not self.connected:
            return Snapshot(self.id, DeviceKind.EV_CHARGER, now, {}, Quality.UNAVAILABLE, "not connected")
        if self.fault is not None:  # out of service: no session is planned on it until it recovers
            return Snapshot(self.id, DeviceKind.EV_CHARGER, now, {}, Quality.UNAVAILABLE, f"station {self.fault}")
        plugged, state = STATUS.get(self.status, (0.0, 1.0))
        if self.paused_by_stop:
            plugged, state = 1.0, 2.0  # the car is still there; we stopped its transaction to pause
        # no transaction, no charging: a MeterValues sent just before a StopTransaction but
        # arriving after it must not show power on an idle connector
        power = max(self.readings.get("power_w", 0.0), 0.0) if self.transaction_id is not None else 0.0
        values = {"plugged": plugged, "state": state, "power_w": power,
                  "session_energy_wh": self.session_energy_wh()}
        lim = self.limit_in_force(now)
        if lim is not None:
            values["current_limit_a"] = lim
        return Snapshot(self.id, DeviceKind.EV_CHARGER, now, values)
