"""What ``vpp devices`` says about each configured device, whatever its protocol (no I/O).

Modbus and ECHONET Lite devices are polled directly by the CLI (``drivers.fleet.DriverFleet``
speaks both). OCPP stations are different: they connect *to* the service's central system
over a WebSocket, so an offline CLI has nobody to ask; their readings and commands go
through the running service's API (:data:`OCPP_READ_HINT`, :data:`OCPP_WRITE_HINT`).
"""
from __future__ import annotations

from datetime import datetime

from drivers.config import Device, EchonetConnection, RtuConnection
from drivers.protocols import Quality, Snapshot

OCPP_READ_HINT = ("OCPP stations connect to the running service's central system and are read through its "
                  "API (GET /api/v1/ev/sessions), not by this offline command")
OCPP_WRITE_HINT = ("OCPP stations are commanded only by the running service's central system (its control "
                   "loop and the API, e.g. /api/v1/ev/sessions); this offline command cannot write to them")


def address(d: Device) -> str:
    """Where the device is reached: Modbus ``host:port unit N`` / serial port, ECHONET Lite
    ``host:port EOJ instance N``, OCPP ``station <id> (OCPP <version>)``."""
    if d.protocol == "ocpp":
        return f"station {d.id} (OCPP {d.version})"
    c = d.connection
    if isinstance(c, EchonetConnection):
        return f"{c.host}:{c.port} instance {c.instance}"
    if isinstance(c, RtuConnection):
        return f"{c.port} unit {c.device_id}"
    return f"{c.host}:{c.port} unit {c.device_id}"


def list_rows(devices: list[Device]) -> list[dict]:
    """One row per device: id, kind, protocol, address and how ``vpp devices read`` reads it."""
    return [{"device": d.id, "kind": d.kind, "protocol": d.protocol, "address": address(d),
             "read": "service API" if d.protocol == "ocpp" else "direct"} for d in devices]


def ocpp_snapshot(d: Device, now: datetime) -> Snapshot:
    """The row ``vpp devices read`` gives an OCPP station: no values, the reason why."""
    from drivers.protocols import DeviceKind

    return Snapshot(d.id, DeviceKind(d.kind), now, {}, Quality.UNAVAILABLE, OCPP_READ_HINT)
