"""The central system's side of one OCPP connection, on the ``ocpp`` library's roles.

:class:`Csms16` (OCPP 1.6 JSON) and :class:`Csms201` (2.0.1) answer what a charge point sends
(boot, heartbeat, status, meter values, authorize, transactions, charging needs) by updating
its :class:`~vpp.csms.station.StationState`; calls the other way go through
:class:`vpp.csms.charger.OcppCharger`. Both share :class:`_Wire`, which reads frames itself so
that malformed frames, unknown actions, wrong message types and floods are answered (a
CallError where the frame has an id), counted per station and never end the connection.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import OCPPError
from ocpp.messages import CallError, MessageType, unpack
from ocpp.routing import on
from ocpp.v16 import ChargePoint as _Cp16
from ocpp.v16 import call_result as r16
from ocpp.v201 import ChargePoint as _Cp201
from ocpp.v201 import call_result as r201

from vpp.csms.station import StationState
from vpp.timefmt import iso

if TYPE_CHECKING:
    from vpp.csms.server import CentralSystem

log = logging.getLogger(__name__)
#: The library logs every frame at INFO; the central system keeps it to warnings.
WIRE_LOG = logging.getLogger("vpp.csms.wire")
WIRE_LOG.setLevel(logging.WARNING)


def parse_ts(text: Any) -> datetime | None:
    """A station's RFC 3339 timestamp, or ``None`` if absent or unparseable."""
    if not isinstance(text, str):
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


class _Wire:
    """Frame reading, throttling and error accounting shared by both versions."""

    state: StationState
    csms: "CentralSystem"
    _connection: Any

    def _setup(self, state: StationState, csms: "CentralSystem") -> None:
        self.state, self.csms = state, csms
        self._bucket = csms.config.ocpp.max_messages_per_s * 2.0  # burst of two seconds' worth
        self._bucket_t = csms.now()

    def _allow(self) -> bool:
        """Token bucket: ``max_messages_per_s`` of the service's time (a simulated run's clock
        too, so compressed time is not a flood), with a two-second burst."""
        rate = self.csms.config.ocpp.max_messages_per_s
        t = self.csms.now()
        elapsed = max((t - self._bucket_t).total_seconds(), 0.0)  # a clock stepped back refills nothing
        self._bucket = min(rate * 2.0, self._bucket + elapsed * rate)
        self._bucket_t = max(t, self._bucket_t)
        if self._bucket < 1.0:
            return False
        self._bucket -= 1.0
        return True

    async def start(self) -> None:
        while True:
            raw = await self._connection.recv()
            self.csms.messages += 1
            await self.route_message(raw)

    async def route_message(self, raw_msg: Any) -> None:
        st = self.state
        try:
            msg = unpack(raw_msg)
        except OCPPError as e:
            st.count("malformed")
            await self._reject_raw(raw_msg, e)
            return
        if msg.message_type_id != MessageType.Call:
            self._response_queue.put_nowait(msg)  # a CallResult/CallError for our pending call
            return
        if not self._allow() and msg.action != "BootNotification":
            st.count("throttled")
            await self._send(msg.create_call_error(_Busy()).to_json())
            return
        try:
            await self._handle_call(msg)
        except OCPPError as e:
            st.count("rejected_calls")
            st.count(f"error:{e.code}")
            await self._send(msg.create_call_error(e).to_json())

    async def _reject_raw(self, raw: Any, err: OCPPError) -> None:
        """Answer a frame the library could not unpack with a CallError when it carries a
        message id (an unparseable frame has none: it is only counted)."""
        try:
            parts = json.loads(raw)
        except (ValueError, TypeError):
            return
        if isinstance(parts, list) and len(parts) >= 2 and isinstance(parts[1], str) and parts[0] == 2:
            await self._send(CallError(parts[1], err.code, err.description, {}).to_json())

    def _now(self) -> datetime:
        return self.csms.now()

    def _booted(self, vendor: str, model: str) -> None:
        st = self.state
        st.vendor, st.model, st.booted, st.last_seen = vendor, model, True, self._now()
        st.count("boots")
        self.csms.after_boot(st.id)

    def _changed(self) -> None:
        self.state.last_seen = self._now()
        self.csms.publish(self.state.id)

    def _status(self, status: str, error_code: str | None) -> None:
        before = self.state.fault
        self.state.on_status(status, error_code)
        if self.state.fault != before:
            self.csms.fault_changed(self.state.id, self.state.fault)
        self._changed()


class _Busy(OCPPError):
    code = "GenericError"
    default_description = "too many messages: throttled"


class Csms16(_Wire, _Cp16):
    """Central-system role for one OCPP 1.6 JSON charge point."""

    def __init__(self, state: StationState, connection: Any, csms: "CentralSystem") -> None:
        _Cp16.__init__(self, state.id, connection, response_timeout=csms.config.ocpp.call_timeout_s, logger=WIRE_LOG)
        self._setup(state, csms)

    @on("BootNotification")
    def on_boot(self, charge_point_vendor: str, charge_point_model: str, **_: Any):
        self._booted(charge_point_vendor, charge_point_model)
        return r16.BootNotification(current_time=iso(self._now()), interval=self.csms.config.ocpp.heartbeat_s,
                                    status="Accepted")

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any):
        self.state.last_seen = self._now()
        return r16.Heartbeat(current_time=iso(self._now()))

    @on("StatusNotification")
    def on_status(self, connector_id: int, error_code: str, status: str, **_: Any):
        if connector_id == self.csms.charger(self.state.id).ocpp.connector_id:
            self._status(status, error_code)
        return r16.StatusNotification()

    @on("MeterValues")
    def on_meter_values(self, connector_id: int, meter_value: list, **_: Any):
        for mv in meter_value:
            self.state.on_meter(mv.get("sampled_value", []), parse_ts(mv.get("timestamp")), self._now())
        self._changed()
        return r16.MeterValues()

    @on("Authorize")
    def on_authorize(self, id_tag: str, **_: Any):
        return r16.Authorize(id_tag_info={"status": self.csms.authorize(id_tag)})

    @on("StartTransaction")
    def on_start(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any):
        status = self.csms.authorize(id_tag)
        tx = self.csms.next_transaction_id()
        if status == "Accepted":
            self.state.start_transaction(str(tx), id_tag, float(meter_start))
            self.state.readings["energy_wh"] = float(meter_start)
            self._changed()
        return r16.StartTransaction(transaction_id=tx, id_tag_info={"status": status})

    @on("StopTransaction")
    def on_stop(self, meter_stop: int, timestamp: str, transaction_id: int, **_: Any):
        st = self.state
        if st.transaction_id == str(transaction_id):
            # the register only grows: an integer meter_stop below the last reading is rounding
            st.readings["energy_wh"] = max(float(meter_stop), st.readings.get("energy_wh", 0.0))
            st.end_transaction()
            self.csms.after_transaction(st.id)
            self._changed()
        return r16.StopTransaction()

    @on("DataTransfer")
    def on_data_transfer(self, vendor_id: str, **_: Any):
        return r16.DataTransfer(status="UnknownVendorId")


class Csms201(_Wire, _Cp201):
    """Central-system role for one OCPP 2.0.1 charging station."""

    def __init__(self, state: StationState, connection: Any, csms: "CentralSystem") -> None:
        _Cp201.__init__(self, state.id, connection, response_timeout=csms.config.ocpp.call_timeout_s,
                        logger=WIRE_LOG)
        self._setup(state, csms)

    @on("BootNotification")
    def on_boot(self, charging_station: dict, reason: str, **_: Any):
        self._booted(charging_station.get("vendor_name", ""), charging_station.get("model", ""))
        return r201.BootNotification(current_time=iso(self._now()), interval=self.csms.config.ocpp.heartbeat_s,
                                     status="Accepted")

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any):
        self.state.last_seen = self._now()
        return r201.Heartbeat(current_time=iso(self._now()))

    @on("StatusNotification")
    def on_status(self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **_: Any):
        if evse_id == self.csms.charger(self.state.id).ocpp.connector_id:
            self._status(connector_status, None)
        return r201.StatusNotification()

    @on("MeterValues")
    def on_meter_values(self, evse_id: int, meter_value: list, **_: Any):
        for mv in meter_value:
            self.state.on_meter(mv.get("sampled_value", []), parse_ts(mv.get("timestamp")), self._now())
        self._changed()
        return r201.MeterValues()

    @on("Authorize")
    def on_authorize(self, id_token: dict, **_: Any):
        return r201.Authorize(id_token_info={"status": self.csms.authorize(id_token.get("id_token", ""))})

    @on("TransactionEvent")
    def on_transaction_event(self, event_type: str, timestamp: str, trigger_reason: str, seq_no: int,
                             transaction_info: dict, meter_value: list | None = None, id_token: dict | None = None,
                             **_: Any):
        st = self.state
        tx = str(transaction_info.get("transaction_id"))
        tag = (id_token or {}).get("id_token")
        status = self.csms.authorize(tag) if tag is not None else "Accepted"
        if event_type == "Started" or (event_type == "Updated" and st.transaction_id != tx):
            if status == "Accepted":
                st.start_transaction(tx, tag, None)
        for mv in meter_value or []:
            st.on_meter(mv.get("sampled_value", []), parse_ts(mv.get("timestamp")), self._now())
        state = transaction_info.get("charging_state")
        if state == "Charging" and st.status not in ("Charging", "Occupied"):
            st.on_status("Charging")
        if event_type == "Ended" and st.transaction_id == tx:
            st.end_transaction()
            self.csms.after_transaction(st.id)
        self._changed()
        if tag is not None:
            return r201.TransactionEvent(id_token_info={"status": status})
        return r201.TransactionEvent()

    @on("NotifyEVChargingNeeds")
    def on_charging_needs(self, charging_needs: dict, evse_id: int, **_: Any):
        ac = charging_needs.get("ac_charging_parameters") or charging_needs.get("dc_charging_parameters") or {}
        needs: dict[str, Any] = {}
        if ac.get("energy_amount") is not None:
            needs["energy_wh"] = float(ac["energy_amount"])
        dep = parse_ts(charging_needs.get("departure_time"))
        if dep is not None:
            needs["departure"] = dep
        self.state.needs = needs
        self.csms.on_needs(self.state.id, needs)
        return r201.NotifyEVChargingNeeds(status="Accepted")

    @on("NotifyEvent")
    def on_notify_event(self, **_: Any):
        return r201.NotifyEvent()
