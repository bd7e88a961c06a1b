"""Charging profiles as OCPP payloads (pure functions, no I/O).

The control loop decides a current limit [A] per charger; here it becomes the payload of a
``SetChargingProfile`` for OCPP 1.6 or 2.0.1:

* during a transaction a ``TxProfile`` that names the running transaction (a station may
  otherwise apply it to the next one), valid for ``duration_s`` so that a central system that
  goes away leaves the station on its default;
* outside a transaction a ``TxDefaultProfile`` (stack level 0): the safe limit a station
  keeps when nobody is talking to it.

The schedule's unit is what the station declares it accepts (``A`` per phase, or ``W``); a
limit in watts is ``A × voltage_v × phases`` with the charger's rated voltage and phases
(the same rule as :func:`vpp.control.ev.power_for`; a Japanese 200 V single-phase charger
at 32 A is 6.4 kW). 1.6 schedules carry one decimal (its schema's ``multipleOf 0.1``).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from drivers.config import Device
from vpp.timefmt import iso

#: Profile ids: one per purpose, so a new profile replaces the previous one of its kind.
DEFAULT_PROFILE_ID = 1
TX_PROFILE_ID = 2
Purpose = Literal["TxProfile", "TxDefaultProfile"]


def rate_unit(station_units: tuple[str, ...], configured: str) -> str:
    """The unit profiles are written in: the configured one, or with ``auto`` the station's
    first declared (``A`` when it declares none)."""
    if configured in ("A", "W"):
        return configured
    return station_units[0] if station_units else "A"


def limit_in(amps: float, unit: str, charger: Device) -> float:
    """``amps`` [A per phase] in ``unit`` (``A`` or ``W``), rounded to 0.1."""
    r = charger.ratings
    v = amps if unit == "A" else amps * r.voltage_v * r.phases
    return round(max(v, 0.0), 1)


def profile_v16(amps: float, charger: Device, unit: str, purpose: Purpose, start: datetime,
                duration_s: int | None, transaction_id: str | None = None) -> dict[str, Any]:
    """``SetChargingProfile`` payload (OCPP 1.6, snake_case for the library) limiting to
    ``amps`` [A] from ``start`` for ``duration_s`` [s] (None: open-ended)."""
    profile: dict[str, Any] = {
        "charging_profile_id": TX_PROFILE_ID if purpose == "TxProfile" else DEFAULT_PROFILE_ID,
        "stack_level": 1 if purpose == "TxProfile" else 0,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": "Absolute",
        "charging_schedule": {
            "charging_rate_unit": unit, "start_schedule": iso(start),
            "charging_schedule_period": [{"start_period": 0, "limit": limit_in(amps, unit, charger),
                                          "number_phases": charger.ratings.phases}],
        },
    }
    if duration_s is not None:
        profile["charging_schedule"]["duration"] = int(duration_s)
    if purpose == "TxProfile":
        profile["transaction_id"] = int(transaction_id)  # 1.6 transaction ids are integers
    return {"connector_id": charger.ocpp.connector_id, "cs_charging_profiles": profile}


def profile_v201(amps: float, charger: Device, unit: str, purpose: Purpose, start: datetime,
                 duration_s: int | None, transaction_id: str | None = None) -> dict[str, Any]:
    """``SetChargingProfile`` payload (OCPP 2.0.1, snake_case) limiting to ``amps`` [A]."""
    schedule: dict[str, Any] = {
        "id": 1, "charging_rate_unit": unit, "start_schedule": iso(start),
        "charging_schedule_period": [{"start_period": 0, "limit": limit_in(amps, unit, charger),
                                      "number_phases": charger.ratings.phases}],
    }
    if duration_s is not None:
        schedule["duration"] = int(duration_s)
    profile: dict[str, Any] = {
        "id": TX_PROFILE_ID if purpose == "TxProfile" else DEFAULT_PROFILE_ID,
        "stack_level": 1 if purpose == "TxProfile" else 0,
        "charging_profile_purpose": purpose, "charging_profile_kind": "Absolute",
        "charging_schedule": [schedule],
    }
    if purpose == "TxProfile":
        profile["transaction_id"] = str(transaction_id)
    return {"evse_id": charger.ocpp.connector_id, "charging_profile": profile}


def profile_payload(version: str, amps: float, charger: Device, unit: str, purpose: Purpose, start: datetime,
                    duration_s: int | None, transaction_id: str | None = None) -> dict[str, Any]:
    """The ``SetChargingProfile`` payload for OCPP ``version`` (``1.6`` or ``2.0.1``)."""
    build = profile_v16 if version == "1.6" else profile_v201
    return build(amps, charger, unit, purpose, start, duration_s, transaction_id)
