"""ECHONET Lite devices behind the capability protocols (:mod:`drivers.protocols`).

One :class:`EchonetDevice` per device object (storage battery, PV, V2H, smart meter) of a
home node; the node's :class:`~drivers.echonet.transport.NodeRequester` carries its requests.

Reading: the Get and Set property maps (0x9F, 0x9E) are read on the first poll and on every
full poll; a map that changes at run time raises the ``property_map_changed`` alarm and the
new map is used. A poll Gets the object's ``poll`` EPCs (plus ``slow`` on full polls) that
the Get map lists; a property answered without data (Get_SNA) is simply absent from the
snapshot (counted in :attr:`EchonetDevice.sna`), an object that answers nothing raises
:class:`~drivers.echonet.transport.EchonetError` (the poller counts a failed poll).
INF notifications update the decoded values between polls.

Writing: every setpoint is validated (ratings, SoC) before any frame is sent
(:class:`~drivers.device.SetpointError`), sent with SetC (the maker's external-control
property first when its quirks need one) and read back with Get
(:class:`~drivers.device.VerifyError` when the device shows something else). ECHONET has no
revert timer: ``revert_s`` is kept by the driver, which puts the device back to standby on the
first poll after it lapsed (on the device's clock: simulated time in a simulated run). A
commanded operation mode that the device leaves on its own
raises the ``mode_reverted`` alarm at the first poll (or INF) that shows it.

Sign conventions at this edge: storage battery D3 is + charging, canonical ``power_w`` is
+ discharge; V2H ``power_w`` keeps + charging the car (< 0: V2H discharge into the home).
"""
from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from drivers.config import Device as DeviceConfig
from drivers import setpoints
from drivers.device import SetpointError, StalePolicy, VerifyError
from drivers.echonet.frame import Frame, FrameError, decode_property_map
from drivers.echonet.objects import ObjectClass, ObjectError, load_object
from drivers.echonet.transport import EchonetError, NodeRequester
from drivers.fields import BY_NAME as FIELD_TABLE
from drivers.protocols import DeviceKind, Quality, Snapshot

log = logging.getLogger(__name__)

_SOC_LO, _SOC_HI = FIELD_TABLE["soc"].range
GET_MAP, SET_MAP = 0x9F, 0x9E
#: Fields that move while a device works (frozen-value detection compares them between polls).
_MEASURED = frozenset({"power_w", "soc", "energy_wh", "import_energy_wh", "export_energy_wh",
                       "session_energy_wh", "vehicle_soc"})


class EchonetDevice:
    """One ECHONET device object; :func:`make_echonet_device` picks the kind's subclass."""

    def __init__(self, config: DeviceConfig, node: NodeRequester, obj: ObjectClass | None = None,
                 stale: StalePolicy | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.id = config.id
        self.kind = DeviceKind(config.kind)
        self.node = node
        self.obj = obj or load_object(config.register_map)
        self.eoj = (self.obj.class_code << 8) | config.connection.instance
        self.stale = stale or StalePolicy()
        self.clock = clock
        self.decoded: dict[str, Any] = {}
        self.get_map: frozenset[int] | None = None
        self.set_map: frozenset[int] | None = None
        self.sna: Counter[int] = Counter()   # EPC -> times answered without data
        self.polls = 0
        self.writes = 0
        self.available = True      # maintained by the poller
        self.latest: Snapshot | None = None
        self.last_error = ""
        #: active alarms of this device: key -> reason (``mode_reverted``, ``property_map_changed``)
        self.alarms: dict[str, str] = {}
        self.commanded_mode: str | None = None
        self._revert_at: float | None = None   # [s, device clock] when a revert_s command lapses
        self._measured: tuple | None = None
        self._same_since: float | None = None
        node.on_notify[self.eoj] = self._on_notify

    # ------------------------------------------------------------------------- reading
    def _now(self) -> tuple[datetime, float]:
        if self.clock is not None:
            ts = self.clock()
            return ts, ts.timestamp()
        return datetime.now(timezone.utc), time.monotonic()

    async def _load_maps(self) -> None:
        raw = await self.node.get(self.eoj, (GET_MAP, SET_MAP))
        if raw[GET_MAP] is None:
            raise EchonetError(f"{self.id}: no Get property map")
        try:
            get_map = decode_property_map(raw[GET_MAP])
            set_map = decode_property_map(raw[SET_MAP]) if raw[SET_MAP] is not None else frozenset()
        except FrameError as e:
            raise EchonetError(f"{self.id}: bad property map: {e}") from None
        if self.get_map is not None and (get_map, set_map) != (self.get_map, self.set_map):
            self._alarm("property_map_changed",
                        f"property maps changed at run time: get {sorted(self.get_map ^ get_map)} "
                        f"set {sorted(self.set_map ^ set_map)} differ")
        self.get_map, self.set_map = get_map, set_map

    def _store(self, epc: int, edt: bytes | None) -> None:
        spec = self.obj.properties.get(epc)
        if spec is None:
            return
        if edt is None:
            self.sna[epc] += 1
            self.decoded.pop(spec.name, None)
            return
        try:
            self.decoded[spec.name] = spec.decode(edt)
        except ObjectError as e:
            self.sna[epc] += 1
            self.decoded.pop(spec.name, None)
            log.debug("%s: %s", self.id, e)

    async def read(self) -> Snapshot:
        """One poll (see the module docstring); raises ``EchonetError`` when nothing answers."""
        full = self.polls % self.obj.slow_every == 0
        if self.get_map is None or full:
            await self._load_maps()
        epcs = [e for e in (*self.obj.poll, *(self.obj.slow if full else ())) if e in self.get_map]
        if not full:  # known-SNA properties are asked again on full polls only
            epcs = [e for e in epcs if e not in self.sna] or epcs
        if not epcs and self.obj.poll:
            raise EchonetError(f"{self.id}: none of the polled properties is in the Get map")
        if epcs:
            raw = await self.node.get(self.eoj, epcs)
            if all(v is None for v in raw.values()):
                raise EchonetError(f"{self.id}: every property answered Get_SNA")
            for epc, edt in raw.items():
                self._store(epc, edt)
        self.polls += 1
        ts, now = self._now()
        await self._after_read(now)
        return self._snapshot(ts, now)

    def _on_notify(self, f: Frame) -> None:
        for p in f.props:
            if p.edt:
                self._store(p.epc, p.edt)
        self._check_mode()

    async def _after_read(self, now: float) -> None:
        self._check_mode()
        if self._revert_at is not None and now >= self._revert_at:
            self._revert_at = None
            log.info("%s: command lapsed (revert_s), back to idle", self.id)
            await self._idle()

    async def _idle(self) -> None:  # pragma: no cover - overridden by controllable kinds
        return None

    def _check_mode(self) -> None:
        mode = self.decoded.get("operation_mode")
        if self.commanded_mode is None or mode is None:
            return
        if mode != self.commanded_mode:
            self._alarm("mode_reverted", f"operation mode {mode} but {self.commanded_mode} was "
                                         f"commanded and read back: the device changed it on its own")
        else:
            self.alarms.pop("mode_reverted", None)

    def _alarm(self, key: str, reason: str) -> None:
        if self.alarms.get(key) != reason:
            log.warning("%s: %s", self.id, reason)
        self.alarms[key] = reason

    def values(self) -> dict[str, float]:
        """Canonical fields [SI] from the decoded properties."""
        return self.obj.canonical(self.decoded)

    def _snapshot(self, ts: datetime, now: float) -> Snapshot:
        values = self.values()
        quality, reason = Quality.GOOD, ""
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        measured = tuple(sorted((k, v) for k, v in values.items() if k in _MEASURED))
        if measured != self._measured:
            self._measured, self._same_since = measured, now
        power = values.get("power_w")
        if bad:
            quality, reason = Quality.BAD, f"non-finite {', '.join(bad)}"
        elif "soc" in values and not _SOC_LO <= values["soc"] <= _SOC_HI:
            quality, reason = Quality.BAD, f"soc {values['soc']} outside {_SOC_LO:g}..{_SOC_HI:g}"
        elif power and self._same_since is not None:
            frozen_s = now - self._same_since
            if frozen_s >= self.stale.stale_after_s and abs(power) * frozen_s / 3600 >= self.stale.stale_min_wh:
                quality, reason = Quality.STALE, f"values unchanged for {frozen_s:.1f} s at power_w {power:.0f} W"
        return Snapshot(self.id, self.kind, ts, values, quality, reason)

    # ------------------------------------------------------------------------- writing
    def _check_available(self) -> None:
        if not self.available:
            raise SetpointError(f"{self.id}: device unavailable, not writing")

    _finite = staticmethod(setpoints.finite)
    _check_revert = staticmethod(setpoints.check_revert)

    async def _set_verified(self, named: dict[str, Any], mode: str | None = None) -> None:
        """SetC ``{property name: value}`` (external control first if the maker needs it),
        then Get them back; raises VerifyError unless the device shows exactly these."""
        if self.get_map is None:
            await self._load_maps()
        try:
            values = {self.obj.epc(n): self.obj.by_name[n].encode(v) for n, v in named.items()}
        except (KeyError, ObjectError) as e:
            raise SetpointError(f"{self.id}: {e}") from None
        ext = self.obj.quirks.external_control
        if ext is not None and "operation_mode" in named:
            values = {ext[0]: bytes([ext[1]]), **values}
        not_settable = [f"{e:#04x}" for e in values if self.set_map is not None and e not in self.set_map]
        if not_settable:
            raise SetpointError(f"{self.id}: EPCs {not_settable} are not in the Set property map")
        refused = await self.node.set(self.eoj, values)
        self.writes += 1
        if refused:
            raise VerifyError(f"{self.id}: device refused EPCs {sorted(hex(e) for e in refused)}")
        back = await self.node.get(self.eoj, values)
        differ = {f"{e:#04x}": (values[e].hex(), None if b is None else b.hex())
                  for e, b in back.items() if b != values[e]}
        for epc, edt in back.items():
            self._store(epc, edt)
        if differ:
            raise VerifyError(f"{self.id}: read back differs (wrote, read): {differ}")
        if mode is not None:
            self.commanded_mode = mode
            self.alarms.pop("mode_reverted", None)
        log.info("%s: set %s", self.id, named)


class EchonetBattery(EchonetDevice):
    """Storage battery 0x027D: :class:`drivers.protocols.Battery`."""

    def values(self) -> dict[str, float]:
        v = super().values()
        mode = self.decoded.get("operation_mode")
        if mode is not None:
            ch, dis = self.decoded.get("charge_power_w"), self.decoded.get("discharge_power_w")
            if mode in ("charge", "rapid_charge") and ch is not None:
                v["setpoint_w"] = -float(ch)
            elif mode == "discharge" and dis is not None:
                v["setpoint_w"] = float(dis)
            elif mode == "standby":
                v["setpoint_w"] = 0.0
        v.setdefault("capacity_wh", float(self.config.ratings.capacity_wh or 0.0))
        wh, rated = self.decoded.get("remaining_wh"), self.decoded.get("rated_energy_wh")
        if wh is not None and rated:  # E2/D0 resolves 1 Wh where E4 only has whole percent
            v["soc"] = float(wh) / float(rated)
        return v

    def validate_power(self, watts: float, revert_s: float | None = None) -> float:
        """Raise :class:`SetpointError` unless ``watts`` fits the ratings and the latest SoC."""
        self._check_available()
        watts = self._finite("watts", watts)
        self._check_revert(revert_s)
        return setpoints.battery_power(self.id, self.config.ratings, watts, self.values().get("soc"), self.latest)

    async def set_power(self, watts: float, revert_s: float | None = None) -> None:
        """Command AC power [W] (> 0 discharge, < 0 charge); back to standby after ``revert_s``."""
        watts = self.validate_power(watts, revert_s)
        if watts > 0:
            await self._set_verified({"discharge_power_w": round(watts), "operation_mode": "discharge"}, "discharge")
        elif watts < 0:
            await self._set_verified({"charge_power_w": round(-watts), "operation_mode": "charge"}, "charge")
        else:
            await self._set_verified({"operation_mode": "standby"}, "standby")
        self._revert_at = self._now()[1] + revert_s if revert_s else None

    async def _idle(self) -> None:
        await self._set_verified({"operation_mode": "standby"}, "standby")


class EchonetPv(EchonetDevice):
    """Home PV 0x0279: :class:`drivers.protocols.PvInverter` (limit via A1, W)."""

    def values(self) -> dict[str, float]:
        v = super().values()
        v.setdefault("power_limit_w", float(self.decoded.get("rated_output_w") or self.config.ratings.power_w or 0))
        return v

    def validate_limit(self, watts: float, revert_s: float | None = None) -> float:
        self._check_available()
        watts = self._finite("watts", watts)
        self._check_revert(revert_s)
        return setpoints.power_limit(self.id, self.config.ratings, watts)

    async def set_power_limit(self, watts: float, revert_s: float | None = None) -> None:
        """Limit AC power to ``watts`` [W] (0 … rating); lifted again after ``revert_s`` [s]."""
        watts = self.validate_limit(watts, revert_s)
        await self._set_verified({"output_limit_w": round(watts)})
        self._revert_at = self._now()[1] + revert_s if revert_s else None

    async def _idle(self) -> None:
        await self._set_verified({"output_limit_w": round(self.config.ratings.power_w or 0)})


class EchonetV2h(EchonetDevice):
    """EV charger/discharger 0x027E: :class:`drivers.protocols.EvCharger` and
    :class:`drivers.protocols.V2hCharger` (discharge into the home)."""

    def _volts(self) -> float:
        r = self.config.ratings
        return r.voltage_v * r.phases

    def values(self) -> dict[str, float]:
        v = super().values()
        state = self.decoded.get("vehicle_state")
        if state is not None:
            plugged = state not in ("not_connected", "unknown")
            v["plugged"] = 1.0 if plugged else 0.0
            # IEC 61851 as number: A=1 no car, B=2 car connected, C=3 charging
            v["state"] = 1.0 if not plugged else (3.0 if v.get("power_w", 0.0) > 0 else 2.0)
        mode, ch = self.decoded.get("operation_mode"), self.decoded.get("charge_power_w")
        if mode is not None:
            v["current_limit_a"] = float(ch) / self._volts() if mode in ("charge", "rapid_charge") and ch else 0.0
        return v

    def validate_current(self, amps: float) -> float:
        self._check_available()
        amps = self._finite("amps", amps)
        return setpoints.current_limit(self.id, self.config.ratings, amps)

    async def set_current_limit(self, amps: float) -> None:
        """Charge at up to ``amps`` [A] (0: standby), as an EB power setting [W]."""
        amps = self.validate_current(amps)
        if amps == 0:
            await self._set_verified({"operation_mode": "standby"}, "standby")
        else:
            await self._set_verified({"charge_power_w": round(amps * self._volts()),
                                      "operation_mode": "charge"}, "charge")

    async def set_discharge_power(self, watts: float) -> None:
        """V2H: discharge the car into the home at ``watts`` [W] (> 0; 0: standby)."""
        self._check_available()
        watts = self._finite("watts", watts)
        limit = self.config.ratings.power_w or (self.config.ratings.max_current_a or 0) * self._volts()
        if not 0 <= watts <= limit:
            raise SetpointError(f"{self.id}: V2H discharge {watts:.0f} W outside 0..{limit:.0f} W")
        if watts == 0:
            await self._set_verified({"operation_mode": "standby"}, "standby")
        else:
            await self._set_verified({"discharge_power_w": round(watts), "operation_mode": "discharge"},
                                     "discharge")

    async def _idle(self) -> None:
        await self._set_verified({"operation_mode": "standby"}, "standby")


class EchonetMeter(EchonetDevice):
    """Low-voltage smart meter 0x0288: :class:`drivers.protocols.Meter` (E7 > 0 = import)."""

    #: coefficient, unit and the fixed-time readings EA/EB, asked for by :meth:`read_half_hour`
    HALF_HOUR_EPCS = (0xD3, 0xE1, 0xEA, 0xEB)

    async def read_half_hour(self) -> dict[str, tuple[datetime, float | None]]:
        """Get EA/EB (with D3 and E1) now, whatever the poll cycle, and return
        :meth:`half_hour_readings` (the metering reads each latch once after :00/:30)."""
        if self.get_map is None:
            await self._load_maps()
        epcs = [e for e in self.HALF_HOUR_EPCS if e in self.get_map]
        if epcs:
            for epc, edt in (await self.node.get(self.eoj, epcs)).items():
                self._store(epc, edt)
        return self.half_hour_readings()

    def half_hour_readings(self) -> dict[str, tuple[datetime, float | None]]:
        """The last fixed-time (30-minute) cumulative readings: ``import``/``export`` ->
        (meter-local time, energy [Wh] or None for "no data"), from EA/EB."""
        k = self.decoded.get("coefficient", 1) * self.decoded.get("energy_unit_kwh", 1.0) * 1000.0
        out = {}
        for key, name in (("import", "import_at_half_hour"), ("export", "export_at_half_hour")):
            r = self.decoded.get(name)
            if r is not None:
                out[key] = (r[0], None if r[1] is None else r[1] * k)
        return out


_KINDS = {"battery": EchonetBattery, "pv": EchonetPv, "ev_charger": EchonetV2h, "meter": EchonetMeter}


def make_echonet_device(config: DeviceConfig, node: NodeRequester, stale: StalePolicy | None = None,
                        clock: Callable[[], datetime] | None = None) -> EchonetDevice:
    """The driver of an ``protocol: echonet_lite`` device config."""
    return _KINDS[config.kind](config, node, None, stale, clock)
