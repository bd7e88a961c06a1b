"""A device on a Modbus link: poll → decode → snapshot, and validated setpoint writes.

:class:`ModbusDevice` reads its map's register blocks, keeps the raw register image and
decodes it into a :class:`~drivers.protocols.Snapshot`. Kind-specific subclasses add the
capability methods of :mod:`drivers.protocols`; every setpoint is validated against the
device's ratings and latest SoC before any Modbus traffic (:class:`SetpointError`, no
write), then written in the map's control order (revert timeout, value, enable flags) and
read back to verify.

Quality rules of a successful read:

* ``BAD``   a canonical value is not finite, SoC is outside its range in the field table
  (:mod:`drivers.fields`, 0..1), or ``|power_w|`` exceeds 1.5 × the rated power.
* ``STALE`` the measured fast registers (fast group, read-only: setpoint registers echo our
  own writes) stayed bit-identical for ``stale_after_s`` while the reported power should
  have moved an energy counter by at least ``stale_min_wh`` (a device reporting 0 W may
  legitimately repeat itself). Full polls (every ``slow_every``) count like fast ones.

"For ``stale_after_s``" is measured on the device's clock: the monotonic wall clock by
default, or the ``clock`` callable given (e.g. a simulated clock's ``now``, which also stamps
the snapshots), so a frozen device is caught after the same *simulated* time in an
accelerated hardware-in-the-loop run.
"""
from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from drivers.modbus import ModbusLink
from drivers.protocols import DeviceKind, Quality, Snapshot
from drivers.registermap import Image, RegisterMap, load_map
from drivers.config import Device as DeviceConfig
from drivers.fields import BY_NAME as FIELD_TABLE
from drivers import setpoints
from drivers.setpoints import SetpointError  # noqa: F401 - re-exported: the drivers' refusal

log = logging.getLogger(__name__)

_SOC_LO, _SOC_HI = FIELD_TABLE["soc"].range


@functools.cache
def _keys(b) -> tuple[tuple[str, int], ...]:
    return tuple((b.table, a) for a in range(b.start, b.start + b.count))


class VerifyError(RuntimeError):
    """A setpoint was written but the read-back differs."""


@dataclass
class StalePolicy:
    """Frozen-value detection parameters (see the module docstring)."""

    stale_after_s: float = 60.0
    stale_min_wh: float = 20.0


class ModbusDevice:
    """A device behind a :class:`ModbusLink`; use :func:`make_device` to get the subclass.

    ``clock`` (optional): ``() -> datetime`` (UTC) for snapshot times and frozen-value
    detection instead of the wall / monotonic clock, e.g. ``SimClock.now``.
    """

    def __init__(self, config: DeviceConfig, link: ModbusLink, rmap: RegisterMap | None = None,
                 stale: StalePolicy | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.clock = clock
        self.id = config.id
        self.kind = DeviceKind(config.kind)
        self.link = link
        self.unit = config.connection.device_id
        self.map = rmap or load_map(config.register_map)
        self.stale = stale or StalePolicy()
        self.image: Image = {}
        self.polls = 0
        self.writes = 0
        self._fast = self.map.blocks(["fast"])
        self._all = self.map.blocks(["fast", "slow"])
        self._measured = self._measured_keys()
        self._fast_raw: tuple | None = None  # measured fast words of the last poll
        self._same_since: float | None = None
        self._values: dict[str, float] | None = None  # decode of the last image read …
        self._values_key: tuple | None = None         # … and the fast words it came from
        self._last_words: dict = {}                   # last words read per block
        self._rating = self._rating_w()
        self._fitted = False
        self.available = True   # maintained by the poller
        self.latest: Snapshot | None = None  # last snapshot the poller produced
        self.last_error = ""                 # why the last failed poll failed

    # ------------------------------------------------------------------------- reading
    async def _read_blocks(self, blocks) -> list[list[int]]:
        raws = []
        image, last = self.image, self._last_words
        read, unit, timeout = self.link.read, self.unit, self.config.timeout_s
        for b in blocks:
            words = await read(b.table, b.start, b.count, unit, timeout)
            if last.get(b) != words:  # unchanged blocks need no image update
                image.update(zip(_keys(b), words))
                last[b] = words
            raws.append(words)
        return raws

    async def _fit_sunspec(self) -> None:
        """Walk the device's SunSpec chain once and move the map's registers onto it."""
        from drivers.sunspec import discover, fit_map, same_layout

        base, chain = await discover(self.link, self.unit, self.config.timeout_s)
        if not same_layout(self.map, base, chain):
            self.map = fit_map(self.map, base, chain)
            self._fast = self.map.blocks(["fast"])
            self._all = self.map.blocks(["fast", "slow"])
            self._measured = self._measured_keys()
            log.info("%s: SunSpec chain at %d differs from map %s; registers relocated",
                     self.id, base, self.map.name)
        self._fitted = True

    async def read(self) -> Snapshot:
        """One poll: read the fast blocks (all blocks every ``slow_every`` polls) and decode.

        SunSpec devices are discovered on the first successful contact. Raises
        :class:`drivers.modbus.ModbusError` when the device does not answer properly.
        """
        if self.map.is_sunspec and not self._fitted:
            await self._fit_sunspec()
        full = self.polls % self.map.slow_every == 0
        blocks = self._all if full else self._fast
        raws = await self._read_blocks(blocks)
        self.polls += 1
        clock = self.clock
        ts = clock() if clock is not None else None
        now = ts.timestamp() if ts is not None else time.monotonic()  # [s], frozen tracking
        image = self.image
        measured = tuple([image.get(k) for k in self._measured])
        if measured != self._fast_raw:
            self._fast_raw, self._same_since = measured, now
        values, key = None, None
        if not full:  # the decode cache looks at fast polls only
            key = tuple(raws)
            if key == self._values_key and self._values is not None:
                values = dict(self._values)  # same words decode to the same values
        if values is None:
            values = self.decoded()
            self._values, self._values_key = values, key
        return self._snapshot(now, values, ts)

    def _measured_keys(self) -> tuple[tuple[str, int], ...]:
        """Image keys of the fast blocks without writable registers: what frozen-value
        detection compares between polls."""
        rw = set(self.map.writable())
        return tuple(k for b in self._fast for k in _keys(b) if k not in rw)

    def decoded(self) -> dict[str, float]:
        """Numeric values decoded from the current raw image (``None`` and strings dropped)."""
        return self.map.decode_numeric(self.image)

    def _rating_w(self) -> float | None:
        r = self.config.ratings
        return r.power_w or (max(r.max_charge_w or 0, r.max_discharge_w or 0) or None)

    def _snapshot(self, now: float, values: dict[str, float], ts: datetime | None = None) -> Snapshot:
        quality, reason = Quality.GOOD, ""
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        power = values.get("power_w")
        rating = self._rating
        if bad:
            quality, reason = Quality.BAD, f"non-finite {', '.join(bad)}"
        elif "soc" in values and not _SOC_LO <= values["soc"] <= _SOC_HI:
            quality, reason = Quality.BAD, f"soc {values['soc']} outside {_SOC_LO:g}..{_SOC_HI:g}"
        elif power is not None and rating and abs(power) > 1.5 * rating:
            quality, reason = Quality.BAD, f"power_w {power:.0f} W beyond 1.5 × rating {rating:.0f} W"
        elif power and self._same_since is not None:
            frozen_s = now - self._same_since
            if frozen_s >= self.stale.stale_after_s and \
                    abs(power) * frozen_s / 3600.0 >= self.stale.stale_min_wh:
                quality = Quality.STALE
                reason = f"registers unchanged for {frozen_s:.1f} s at power_w {power:.0f} W"
        return Snapshot(self.id, self.kind, ts or datetime.now(timezone.utc), values, quality, reason)

    # ------------------------------------------------------------------------- writing
    async def _ensure_image(self) -> None:
        if not self.image:
            await self.read()

    async def _write_control(self, control_name: str, value: float, revert_s: float | None) -> None:
        """Write ``value`` through the map's control (revert, value, enable) and verify it."""
        ctl = self.map.controls.get(control_name)
        if ctl is None:
            raise SetpointError(f"{self.id}: map {self.map.name} has no control {control_name}")
        await self._ensure_image()
        context = self.decoded()
        if context.get("rating_w") is None and self.config.ratings.power_w:
            context["rating_w"] = float(self.config.ratings.power_w)
        ordered: dict[str, float] = {}
        if ctl.revert is not None:
            ordered[ctl.revert] = float(revert_s or 0.0)
        ordered[ctl.register] = value
        ordered.update(ctl.enable)
        try:
            requests = [self.map.encode_write({k: v}, self.image, context)[0]
                        for k, v in ordered.items()]
        except (ValueError, OverflowError) as e:
            raise SetpointError(f"{self.id}: cannot encode {control_name}={value}: {e}") from None
        for table, address, words in requests:
            await self.link.write(address, words, self.unit, self.config.timeout_s)
            self.writes += 1
        table, address, words = requests[1 if ctl.revert is not None else 0]
        back = await self.link.read(table, address, len(words), self.unit, self.config.timeout_s)
        for i, w in enumerate(back):
            self.image[(table, address + i)] = w
        self._values = None
        self._last_words.clear()
        if list(back) != list(words):
            raise VerifyError(f"{self.id}: wrote {words} to {address}, read back {back}")
        log.info("%s: %s = %s (revert %s s)", self.id, control_name, value, revert_s)

    def _check_available(self) -> None:
        if not self.available:
            raise SetpointError(f"{self.id}: device unavailable, not writing")

    _check_revert = staticmethod(setpoints.check_revert)
    _finite = staticmethod(setpoints.finite)


class BatteryDevice(ModbusDevice):
    async def set_power(self, watts: float, revert_s: float | None = None) -> None:
        """Command AC power [W] (> 0 discharge, < 0 charge); revert to 0 W after ``revert_s``."""
        watts = self.validate_power(watts, revert_s)
        await self._write_control("setpoint_w", watts, revert_s)

    def validate_power(self, watts: float, revert_s: float | None = None) -> float:
        """Raise :class:`SetpointError` unless ``watts`` fits the ratings and the latest SoC."""
        self._check_available()
        watts = self._finite("watts", watts)
        self._check_revert(revert_s)
        soc = self.decoded().get("soc") if self.image else None
        return setpoints.battery_power(self.id, self.config.ratings, watts, soc, self.latest)


class PvDevice(ModbusDevice):
    async def set_power_limit(self, watts: float, revert_s: float | None = None) -> None:
        """Limit AC active power to ``watts`` [W] (0 … rating); revert after ``revert_s`` [s]."""
        watts = self.validate_limit(watts, revert_s)
        await self._write_control("power_limit_w", watts, revert_s)

    def validate_limit(self, watts: float, revert_s: float | None = None) -> float:
        self._check_available()
        watts = self._finite("watts", watts)
        self._check_revert(revert_s)
        return setpoints.power_limit(self.id, self.config.ratings, watts)


class EvChargerDevice(ModbusDevice):
    async def set_current_limit(self, amps: float) -> None:
        """Set the charging current limit [A] (0 pauses charging; else min..max current)."""
        amps = self.validate_current(amps)
        await self._write_control("current_limit_a", amps, None)

    def validate_current(self, amps: float) -> float:
        self._check_available()
        amps = self._finite("amps", amps)
        return setpoints.current_limit(self.id, self.config.ratings, amps)


class MeterDevice(ModbusDevice):
    """Read-only meter; ``power_w`` > 0 = import."""


_CLASSES = {DeviceKind.BATTERY: BatteryDevice, DeviceKind.PV: PvDevice,
            DeviceKind.EV_CHARGER: EvChargerDevice, DeviceKind.METER: MeterDevice}


def make_device(config: DeviceConfig, link: ModbusLink, stale: StalePolicy | None = None,
                clock: Callable[[], datetime] | None = None) -> ModbusDevice:
    """The device class matching ``config.kind`` (implements the matching Protocol);
    ``clock`` as in :class:`ModbusDevice`."""
    rmap = load_map(config.register_map)
    if rmap.kind.value != config.kind:
        raise ValueError(f"device {config.id}: map {rmap.name} is for {rmap.kind.value}, "
                         f"not {config.kind}")
    return _CLASSES[DeviceKind(config.kind)](config, link, rmap, stale, clock)
