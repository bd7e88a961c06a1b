"""Simulated OCPP charge points (1.6 JSON and 2.0.1) on the ``ocpp`` library's charge-point role.

A :class:`SimStation` connects to a central system over a real WebSocket, boots, reports its
connector status, runs transactions for the car plugged into it and sends MeterValues while
a car physics model (:mod:`simulators.physics`: battery, on-board charger maximum, taper
above ``taper_soc``) charges under the limit its charging profiles allow.

Profile rules it follows (OCPP 1.6 §3.13 / 2.0.1 K01): a ``TxDefaultProfile`` applies to
every transaction; a ``TxProfile`` applies only to the transaction it names. Its quirks
(:class:`Quirks`) are the ones real stations have:

``zero_limit_rejected``          a limit of 0 is Rejected (the central system must pause otherwise)
``tx_profile_outside_tx``        a TxProfile while no transaction runs is Rejected (the spec's rule)
``external_control_disabled``    every SetChargingProfile is Rejected ("EM controlled by external
                                 system is disabled"); a plain limit key ``MaxCurrent`` still works
``untargeted_ignored``           a TxProfile without a transaction id is accepted but not applied
                                 to the running transaction
``missing_measurands``           MeterValues carry only power (no energy register)
``never_answers``                calls from the central system are never answered
``clock_skew_s``                 its timestamps are off by this many seconds
:meth:`SimStation.reboot`        reconnects, boots and starts a new transaction (new id) for the same car

Units: W, Wh, A, V, s; SoC as a fraction.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as c16
from ocpp.v16 import call_result as r16
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as c201
from ocpp.v201 import call_result as r201
from websockets.asyncio.client import ClientConnection, connect

from simulators.ocpp_validity import profile_end
from simulators.physics import ev_charge_power, ev_taper_max_w

PLAIN_LIMIT_KEY = "MaxCurrent"


@dataclass
class Car:
    """A car: ``capacity_wh`` [Wh], ``soc`` [fraction], on-board charger ``max_w`` [W],
    taper above ``taper_soc``; ``target_soc`` where it stops drawing."""

    capacity_wh: float = 60_000.0
    soc: float = 0.3
    max_w: float = 7_400.0
    taper_soc: float = 0.8
    target_soc: float = 1.0


@dataclass
class Quirks:
    zero_limit_rejected: bool = False
    tx_profile_outside_tx: bool = True
    external_control_disabled: bool = False
    untargeted_ignored: bool = True
    missing_measurands: bool = False
    never_answers: bool = False
    clock_skew_s: float = 0.0
    rate_units: str = "Current"  #: ChargingScheduleAllowedChargingRateUnit: "Current", "Power" or both


@dataclass
class StationModel:
    """The station's electrical state (no I/O): limits in force, transaction, meter, car."""

    voltage_v: float = 200.0
    phases: int = 1
    max_current_a: float = 32.0
    min_current_a: float = 6.0
    car: Car | None = None
    energy_wh: float = 0.0  #: lifetime register
    power_w: float = 0.0
    tx_id: str | None = None
    default_limit_a: float | None = None
    tx_limit: tuple[str | None, float] | None = None  #: (transaction named, limit [A])
    pending_limit_a: float | None = None  #: an untargeted TxProfile kept for the next transaction
    plain_limit_a: float | None = None
    profiles: list[dict] = field(default_factory=list)  #: every profile received (for tests)
    restart_s: float = 0.0  #: no charging for this long yet after the supply was interrupted [s]
    default_until: datetime | None = None  #: the TxDefaultProfile's end (None: open-ended)
    tx_until: datetime | None = None  #: the TxProfile's end (None: open-ended)
    expired: list[str] = field(default_factory=list)  #: purposes of profiles that ran out (for tests)

    def expire(self, now: datetime) -> None:  # the profiles whose validity ended: default / own maximum
        if self.tx_limit is not None and self.tx_until is not None and now >= self.tx_until:
            self.tx_limit, self.tx_until, self.expired = None, None, self.expired + ["TxProfile"]
        if self.default_limit_a is not None and self.default_until is not None and now >= self.default_until:
            self.default_limit_a, self.default_until, self.expired = None, None, self.expired + ["TxDefaultProfile"]

    def limit_a(self) -> float:
        """Current limit in force [A]."""
        lim = self.max_current_a
        if self.default_limit_a is not None:
            lim = self.default_limit_a
        if self.tx_id is not None and self.tx_limit is not None and self.tx_limit[0] == self.tx_id:
            lim = self.tx_limit[1]
        if self.plain_limit_a is not None:
            lim = min(lim, self.plain_limit_a)
        return min(lim, self.max_current_a)

    def to_amps(self, limit: float, unit: str) -> float:
        return limit if unit == "A" else limit / (self.voltage_v * self.phases)

    def apply_profile(self, purpose: str, limit: float, unit: str, tx: str | None, q: Quirks,
                      until: datetime | None = None) -> str:
        """Accept or reject one profile (valid until ``until``) by the quirks: ``Accepted``/``Rejected``."""
        self.profiles.append({"purpose": purpose, "limit": limit, "unit": unit, "tx": tx})
        if q.external_control_disabled:
            return "Rejected"
        amps = self.to_amps(limit, unit)
        if amps <= 0 and q.zero_limit_rejected:
            return "Rejected"
        if purpose == "TxDefaultProfile":
            self.default_limit_a, self.default_until = amps, until
            return "Accepted"
        if purpose != "TxProfile":
            return "Rejected"
        if self.tx_id is None and q.tx_profile_outside_tx:
            return "Rejected"
        if tx is None and q.untargeted_ignored:
            self.pending_limit_a = amps  # applied to the next transaction, not this one
            return "Accepted"
        self.tx_limit, self.tx_until = (tx if tx is not None else self.tx_id, amps), until
        return "Accepted"

    def begin(self, tx_id: str) -> None:
        self.tx_id = tx_id
        if self.pending_limit_a is not None:
            self.tx_limit, self.pending_limit_a = (tx_id, self.pending_limit_a), None

    def end(self) -> None:
        self.tx_id, self.tx_limit, self.power_w = None, None, 0.0

    def step(self, dt_s: float) -> None:
        """Advance ``dt_s`` [s]: the car charges at what the limit, its charger and taper allow."""
        car = self.car
        if self.restart_s > 0:
            self.restart_s = max(self.restart_s - dt_s, 0.0)
            self.power_w = 0.0
            return
        if car is None or self.tx_id is None or dt_s <= 0:
            self.power_w = 0.0
            return
        need = max(car.target_soc - car.soc, 0.0) * car.capacity_wh
        top = float(ev_taper_max_w(car.soc, car.max_w, car.taper_soc))
        p = float(ev_charge_power(self.limit_a(), self.voltage_v, self.phases, top, need, dt_s, self.min_current_a))
        self.power_w = p
        e = p * dt_s / 3600.0
        self.energy_wh += e
        car.soc = min(car.soc + e / car.capacity_wh, 1.0)


class _Role:
    """Handlers shared by both versions' charge-point roles."""

    sim: "SimStation"

    def _config_value(self, key: str) -> str | None:
        m, q = self.sim.model, self.sim.quirks
        return {"ChargingScheduleAllowedChargingRateUnit": q.rate_units, "SmartChargingCtrlr/RateUnit": q.rate_units,
                PLAIN_LIMIT_KEY: f"{m.plain_limit_a if m.plain_limit_a is not None else m.max_current_a:.1f}",
                "HeartbeatInterval": "300"}.get(key)

    async def route_message(self, raw_msg: Any) -> None:
        if self.sim.quirks.never_answers and '"SetChargingProfile"' in str(raw_msg):
            self.sim.unanswered += 1
            return
        await super().route_message(raw_msg)  # type: ignore[misc]


class _Sim16(_Role, Cp16):
    @on("SetChargingProfile")
    def on_set_profile(self, connector_id: int, cs_charging_profiles: dict, **_: Any):
        p = cs_charging_profiles
        sch = p["charging_schedule"]
        tx = p.get("transaction_id")
        return r16.SetChargingProfile(status=self.sim.model.apply_profile(
            p["charging_profile_purpose"], float(sch["charging_schedule_period"][0]["limit"]),
            sch["charging_rate_unit"], None if tx is None else str(tx), self.sim.quirks,
            profile_end(p, sch, self.sim.now())))

    @on("ClearChargingProfile")
    def on_clear(self, **kw: Any):
        self.sim.model.tx_limit = None
        return r16.ClearChargingProfile(status="Accepted")

    @on("GetConfiguration")
    def on_get_configuration(self, key: list | None = None, **_: Any):
        keys = key or ["ChargingScheduleAllowedChargingRateUnit", PLAIN_LIMIT_KEY]
        known = [{"key": k, "readonly": k != PLAIN_LIMIT_KEY, "value": self._config_value(k)}
                 for k in keys if self._config_value(k) is not None]
        return r16.GetConfiguration(configuration_key=known,
                                    unknown_key=[k for k in keys if self._config_value(k) is None] or None)

    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str, **_: Any):
        if key != PLAIN_LIMIT_KEY:
            return r16.ChangeConfiguration(status="NotSupported")
        self.sim.model.plain_limit_a = float(value)
        return r16.ChangeConfiguration(status="Accepted")

    @on("RemoteStartTransaction")
    def on_remote_start(self, id_tag: str, **_: Any):
        ok = self.sim.model.car is not None and self.sim.model.tx_id is None
        if ok:
            self.sim.later(self.sim.start_transaction(id_tag))
        return r16.RemoteStartTransaction(status="Accepted" if ok else "Rejected")

    @on("RemoteStopTransaction")
    def on_remote_stop(self, transaction_id: int, **_: Any):
        ok = self.sim.model.tx_id == str(transaction_id)
        if ok:
            self.sim.later(self.sim.stop_transaction("Remote"))
        return r16.RemoteStopTransaction(status="Accepted" if ok else "Rejected")

    @on("Reset")
    def on_reset(self, type: str, **_: Any):
        self.sim.later(self.sim.reboot(delay_s=0.2))
        return r16.Reset(status="Accepted")


class _Sim201(_Role, Cp201):
    @on("SetChargingProfile")
    def on_set_profile(self, evse_id: int, charging_profile: dict, **_: Any):
        p = charging_profile
        sch = p["charging_schedule"][0]
        status = self.sim.model.apply_profile(p["charging_profile_purpose"],
                                              float(sch["charging_schedule_period"][0]["limit"]),
                                              sch["charging_rate_unit"], p.get("transaction_id"), self.sim.quirks,
                                              profile_end(p, sch, self.sim.now()))
        return r201.SetChargingProfile(status=status)

    @on("ClearChargingProfile")
    def on_clear(self, **_: Any):
        self.sim.model.tx_limit = None
        return r201.ClearChargingProfile(status="Accepted")

    @on("GetVariables")
    def on_get_variables(self, get_variable_data: list, **_: Any):
        out = []
        for d in get_variable_data:
            key = f"{d['component']['name']}/{d['variable']['name']}"
            v = self._config_value(key)
            out.append({"attribute_status": "Accepted" if v is not None else "UnknownVariable",
                        "component": d["component"], "variable": d["variable"],
                        **({"attribute_value": v} if v is not None else {})})
        return r201.GetVariables(get_variable_result=out)

    @on("SetVariables")
    def on_set_variables(self, set_variable_data: list, **_: Any):
        out = []
        for d in set_variable_data:
            ok = d["component"]["name"] == "SmartChargingCtrlr" and d["variable"]["name"] == PLAIN_LIMIT_KEY
            if ok:
                self.sim.model.plain_limit_a = float(d["attribute_value"])
            out.append({"attribute_status": "Accepted" if ok else "UnknownVariable",
                        "component": d["component"], "variable": d["variable"]})
        return r201.SetVariables(set_variable_result=out)

    @on("RequestStartTransaction")
    def on_request_start(self, id_token: dict, remote_start_id: int, **_: Any):
        ok = self.sim.model.car is not None and self.sim.model.tx_id is None
        if ok:
            self.sim.later(self.sim.start_transaction(id_token["id_token"]))
        return r201.RequestStartTransaction(status="Accepted" if ok else "Rejected")

    @on("RequestStopTransaction")
    def on_request_stop(self, transaction_id: str, **_: Any):
        ok = self.sim.model.tx_id == transaction_id
        if ok:
            self.sim.later(self.sim.stop_transaction("Remote"))
        return r201.RequestStopTransaction(status="Accepted" if ok else "Rejected")

    @on("Reset")
    def on_reset(self, type: str, **_: Any):
        self.sim.later(self.sim.reboot(delay_s=0.2))
        return r201.Reset(status="Accepted")


_seq = itertools.count(1)


class SimStation:
    """One simulated charge point ``sid`` speaking OCPP ``version`` to ``url`` (``.../ocpp/``).

    ``meter_interval_s`` [s wall] between MeterValues; ``speed``: simulated seconds per wall
    second for the car physics (0: the owner steps :attr:`model` itself, e.g. a simulated
    site on its clock). ``ssl`` for security profile 2, ``password`` for 1 and 2.
    """

    def __init__(self, sid: str, version: str, url: str, *, password: str | None = None,
                 ssl_context: ssl.SSLContext | None = None, model: StationModel | None = None,
                 quirks: Quirks | None = None, meter_interval_s: float = 1.0, speed: float = 1.0,
                 id_tag: str = "TAG-1", connector_id: int = 1, clock: Any = None) -> None:
        self.id, self.version, self.url = sid, version, url.rstrip("/") + "/"
        self.password, self.ssl = password, ssl_context
        self.model = model or StationModel()
        self.quirks = quirks or Quirks()
        self.meter_interval_s, self.speed, self.id_tag, self.connector_id = meter_interval_s, speed, id_tag, connector_id
        self.clock = clock  #: its time (``now()``, UTC); default the wall clock
        self.ws: ClientConnection | None = None
        self.cp: _Sim16 | _Sim201 | None = None
        self.unanswered = 0
        self.boots = 0
        self._tasks: list[asyncio.Task] = []
        self._bg: set[asyncio.Task] = set()
        self._stopping = False

    # ------------------------------------------------------------------ helpers
    def now(self) -> datetime:
        t = self.clock.now() if self.clock is not None else datetime.now(timezone.utc)
        return t + timedelta(seconds=self.quirks.clock_skew_s)

    def ts(self) -> str:
        return self.now().isoformat(timespec="seconds").replace("+00:00", "Z")

    def later(self, coro: Any) -> None:
        """Run ``coro`` outside the handler (a handler must answer before the station calls)."""
        t = asyncio.create_task(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    @property
    def v16(self) -> bool:
        return self.version == "1.6"

    # ------------------------------------------------------------------ lifecycle
    async def connect(self) -> None:
        """Open the WebSocket, start the role's receive loop and boot."""
        headers = {}
        if self.password is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{self.id}:{self.password}".encode()).decode()
        sub = "ocpp1.6" if self.v16 else "ocpp2.0.1"
        self.ws = await connect(self.url + self.id, subprotocols=[sub], additional_headers=headers, ssl=self.ssl,
                                open_timeout=10, max_size=None)
        cls = _Sim16 if self.v16 else _Sim201
        self.cp = cls(self.id, self.ws, response_timeout=10)
        self.cp.sim = self
        self._tasks = [asyncio.create_task(self._recv(), name=f"sim-{self.id}-recv")]
        await self.boot()
        self._tasks.append(asyncio.create_task(self._meter_loop(), name=f"sim-{self.id}-meter"))

    async def _recv(self) -> None:
        try:
            await self.cp.start()
        except Exception:  # noqa: BLE001 - the connection closed; reboot/stop reconnect as needed
            pass

    async def boot(self) -> None:
        self.boots += 1
        if self.v16:
            await self.cp.call(c16.BootNotification(charge_point_vendor="SimVendor", charge_point_model="Sim16"))
        else:
            await self.cp.call(c201.BootNotification(charging_station={"vendor_name": "SimVendor", "model": "Sim201"},
                                                     reason="PowerUp"))
        await self.status()

    async def status(self, fault: str | None = None, error_code: str = "NoError") -> None:
        """StatusNotification of the connector (``fault``: report ``Faulted``/``Unavailable`` instead)."""
        m = self.model
        s = fault or ("Available" if m.car is None else ("Charging" if m.tx_id is not None else "Preparing"))
        if self.v16:
            await self.cp.call(c16.StatusNotification(connector_id=self.connector_id, error_code=error_code, status=s,
                                                      timestamp=self.ts()))
        else:
            await self.cp.call(c201.StatusNotification(timestamp=self.ts(), connector_status=fault or (
                "Available" if m.car is None else "Occupied"), evse_id=self.connector_id, connector_id=1))

    async def close(self) -> None:
        self._stopping = True
        for t in self._tasks + list(self._bg):
            t.cancel()
        await asyncio.gather(*self._tasks, *self._bg, return_exceptions=True)
        if self.ws is not None:
            await self.ws.close()

    async def reboot(self, delay_s: float = 0.0) -> None:
        """Drop the connection (after ``delay_s``: a Reset is answered first), come back, boot
        and (car still plugged) start a new transaction."""
        await asyncio.sleep(delay_s)
        had_tx = self.model.tx_id is not None
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ws.close()
        self.model.end()
        self.model.default_limit_a = None  # profiles are volatile on this station
        await self.connect()
        if had_tx and self.model.car is not None:
            await self.start_transaction(self.id_tag)

    # ------------------------------------------------------------------ car and transactions
    async def plug(self, car: Car, start: bool = True) -> None:
        self.model.car = car
        await self.status()
        if start:
            await self.start_transaction(self.id_tag)

    async def unplug(self) -> None:
        if self.model.tx_id is not None:
            await self.stop_transaction("EVDisconnected")
        self.model.car = None
        await self.status()

    async def start_transaction(self, id_tag: str) -> None:
        self.id_tag = id_tag
        if self.v16:
            res = await self.cp.call(c16.StartTransaction(connector_id=self.connector_id, id_tag=id_tag,
                                                          meter_start=int(self.model.energy_wh), timestamp=self.ts()))
            if res.id_tag_info["status"] != "Accepted":
                return
            self.model.begin(str(res.transaction_id))
        else:
            tx = uuid.uuid4().hex[:16]
            self.model.begin(tx)
            await self.cp.call(c201.TransactionEvent(
                event_type="Started", timestamp=self.ts(), trigger_reason="Authorized", seq_no=next(_seq),
                transaction_info={"transaction_id": tx, "charging_state": "Charging"},
                id_token={"id_token": id_tag, "type": "ISO14443"}, evse={"id": self.connector_id, "connector_id": 1},
                meter_value=[self._meter_value()]))
        await self.status()

    async def stop_transaction(self, reason: str) -> None:
        tx = self.model.tx_id
        if tx is None:
            return
        self.model.end()
        if self.v16:
            await self.cp.call(c16.StopTransaction(meter_stop=int(self.model.energy_wh), timestamp=self.ts(),
                                                   transaction_id=int(tx), reason=reason))
        else:
            await self.cp.call(c201.TransactionEvent(
                event_type="Ended", timestamp=self.ts(), trigger_reason="RemoteStop" if reason == "Remote" else "EVDeparted",
                seq_no=next(_seq), transaction_info={"transaction_id": tx, "stopped_reason": reason},
                meter_value=[self._meter_value()]))
        await self.status()

    async def notify_needs(self, energy_wh: float, departure: datetime) -> str:
        """OCPP 2.0.1 NotifyEVChargingNeeds (what an ISO 15118 car tells the station)."""
        res = await self.cp.call(c201.NotifyEVChargingNeeds(
            evse_id=self.connector_id,
            charging_needs={"requested_energy_transfer": "AC_single_phase" if self.model.phases == 1
                            else "AC_three_phase", "departure_time": departure.isoformat(),
                            "ac_charging_parameters": {"energy_amount": int(energy_wh), "ev_min_current": 6,
                                                       "ev_max_current": int(self.model.max_current_a),
                                                       "ev_max_voltage": int(self.model.voltage_v)}}))
        return res.status

    # ------------------------------------------------------------------ meter values
    def _sampled(self) -> list[dict]:
        m = self.model
        v16 = self.v16
        def val(x: float) -> Any:
            return f"{x:.1f}" if v16 else round(x, 1)
        out = [{"value": val(m.power_w), "measurand": "Power.Active.Import",
                **({"unit": "W"} if v16 else {"unit_of_measure": {"unit": "W"}})}]
        if not self.quirks.missing_measurands:
            out.append({"value": val(m.energy_wh), "measurand": "Energy.Active.Import.Register",
                        **({"unit": "Wh"} if v16 else {"unit_of_measure": {"unit": "Wh"}})})
            out.append({"value": val(m.limit_a()), "measurand": "Current.Offered",
                        **({"unit": "A"} if v16 else {"unit_of_measure": {"unit": "A"}})})
        return out

    def _meter_value(self) -> dict:
        return {"timestamp": self.ts(), "sampled_value": self._sampled()}

    async def send_meter_values(self) -> None:
        if self.v16:
            await self.cp.call(c16.MeterValues(connector_id=self.connector_id, meter_value=[self._meter_value()],
                                               transaction_id=int(self.model.tx_id) if self.model.tx_id else None))
        else:
            await self.cp.call(c201.MeterValues(evse_id=self.connector_id, meter_value=[self._meter_value()]))

    async def _meter_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.meter_interval_s)
            t = loop.time()
            self.model.expire(self.now())
            if self.speed > 0:
                self.model.step((t - last) * self.speed)
            last = t
            try:
                await self.send_meter_values()
            except asyncio.TimeoutError:
                pass
