"""Simulated device models: state + parameters; the physics lives in :mod:`simulators.physics`.

Each model has ``step(now, dt_s)`` (advance its state over ``dt_s`` seconds ending at
``now``), ``values()`` (readings under the canonical names of :data:`drivers.protocols.FIELDS`,
SI units, project sign convention) and ``apply_write(named_values)`` (setpoints decoded from a
Modbus write; counted in ``writes``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from drivers.protocols import DeviceKind
from simulators import physics
from vpp.config import Device, PvArray, Site

CloudTrace = Callable[[datetime], float]
#: Grid frequency in eastern Japan (Tohoku) [Hz].
NOMINAL_HZ = 50.0


class DeviceModel:
    """Common state of every simulated device."""

    kind: DeviceKind

    def __init__(self, device: Device) -> None:
        self.device = device
        self.id = device.id
        self.power_w = 0.0
        self.writes = 0
        self.now: datetime | None = None

    def step(self, now: datetime, dt_s: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def values(self) -> dict[str, float | str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply_write(self, named_values: dict[str, float]) -> None:
        """Apply setpoints decoded from a client write (unknown names are ignored)."""
        self.writes += 1
        self._apply(named_values)

    def _apply(self, named_values: dict[str, float]) -> None:
        return None

    def _age_s(self, since: datetime | None) -> float:
        if since is None or self.now is None:
            return 0.0
        return (self.now - since).total_seconds()


def _revert(v: dict[str, float]) -> float | None:
    """Revert timeout [s] from a write (any ``*revert_s`` name), if present."""
    for k, x in v.items():
        if k.endswith("revert_s") and x is not None:
            return float(x)
    return None


def _enabled(v: dict[str, float]) -> bool | None:
    """Enable flag from a write (any ``*_enabled`` name), if present."""
    for k, x in v.items():
        if k.endswith("_enabled") and x is not None:
            return bool(x)
    return None


# ---------------------------------------------------------------------------------- PV
class PvModel(DeviceModel):
    """PV inverter fed by one or more arrays; clear-sky × cloud, clipped at rating and limit.

    The power limit (SunSpec model 123 semantics) is in force only while enabled and reverts
    to the rating when its revert timeout lapses.

    Clear-sky POA is computed once per UTC day at 1-min resolution per array (one vectorised
    pvlib call) and interpolated, so per-second stepping stays cheap.
    """

    kind = DeviceKind.PV

    def __init__(self, device: Device, site: Site, arrays: list[PvArray],
                 cloud: CloudTrace | None = None, temp_air_c: float = 20.0) -> None:
        super().__init__(device)
        self.site = site
        self.temp_air_c = temp_air_c  # ambient [°C] for the cell temperature
        self.rating_w = float(device.ratings.power_w or 0.0)
        self.arrays = arrays or [PvArray(id=f"{device.id}-array", inverter=device.id,
                                         kwp=self.rating_w * 1.1 / 1000.0)]
        self.cloud = cloud
        self.limit_w = self.rating_w
        self.limit_enabled = False
        self.limit_revert_s = 0.0
        self.limit_set_at: datetime | None = None
        self.energy_wh = 0.0
        self._day: tuple[datetime, np.ndarray] | None = None  # (day start, [arrays, 1441] POA)

    def _poa(self, now: datetime) -> np.ndarray:
        day = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        if self._day is None or self._day[0] != day:
            times = pd.date_range(day, periods=1441, freq="1min")
            s = self.site
            self._day = (day, np.vstack([
                physics.clearsky_poa(times, s.latitude, s.longitude, s.altitude, a.tilt,
                                     a.azimuth).to_numpy()
                for a in self.arrays]))
        minute = (now - day).total_seconds() / 60.0
        grid = np.arange(1441.0)
        return np.array([np.interp(minute, grid, row) for row in self._day[1]])

    def _limit_active(self) -> bool:
        lapsed = physics.effective_setpoint(1.0, self._age_s(self.limit_set_at), self.limit_revert_s) == 0
        return self.limit_enabled and not lapsed

    def limit_in_force_w(self) -> float:
        return min(self.limit_w, self.rating_w) if self._limit_active() else self.rating_w

    def step(self, now: datetime, dt_s: float) -> None:
        limit_w = self.limit_in_force_w()
        if self.limit_enabled and not self._limit_active():
            self.limit_enabled = False  # a lapsed command disables itself (SunSpec revert)
        self.now = now
        csi = 1.0 if self.cloud is None else float(self.cloud(now))
        poa = self._poa(now)
        t_cell = np.array([physics.cell_temperature(p * csi, self.temp_air_c, 1.0, a.temperature_model)
                           for p, a in zip(poa, self.arrays)])
        per_array = physics.pv_ac_power(poa, np.array([a.kwp for a in self.arrays]), csi,
                                        np.array([a.losses for a in self.arrays]),
                                        temp_cell_c=t_cell)
        self.power_w = float(physics.pv_ac_power(1000.0, float(np.sum(per_array)) / 1000.0,
                                                 losses=0.0, rating_w=self.rating_w,
                                                 limit_w=limit_w))
        self.energy_wh += self.power_w * dt_s / 3600.0

    def values(self) -> dict[str, float | str]:
        limit = self.limit_in_force_w()
        v = self.device.ratings.voltage_v
        if self.power_w <= 0:
            state = 2  # sleeping
        elif limit < self.rating_w and self.power_w >= limit - 1e-6:
            state = 5  # throttled
        else:
            state = 4  # MPPT
        return {"power_w": self.power_w, "energy_wh": self.energy_wh, "power_limit_w": limit,
                "power_limit_enabled": 1.0 if self._limit_active() else 0.0,
                "power_limit_revert_s": self.limit_revert_s, "rating_w": self.rating_w,
                "voltage_v": v, "current_a": self.power_w / (v * self.device.ratings.phases),
                "frequency_hz": NOMINAL_HZ, "operating_state": float(state), "serial": self.id}

    def _apply(self, v: dict[str, float]) -> None:
        if "power_limit_pct" in v and "power_limit_w" not in v:
            v = {**v, "power_limit_w": v["power_limit_pct"] / 100.0 * self.rating_w}
        if "power_limit_w" in v:
            self.limit_w = max(0.0, float(v["power_limit_w"]))
        revert = _revert(v)
        if revert is not None:
            self.limit_revert_s = revert
        enabled = _enabled(v)
        if enabled is not None:
            self.limit_enabled = enabled
        if "power_limit_w" in v or revert is not None or enabled:
            self.limit_set_at = self.now  # the revert timer (re)starts with each command


# ----------------------------------------------------------------------------- battery
class BatteryModel(DeviceModel):
    """Battery following its power setpoint within power and SoC limits.

    As in SunSpec model 704, a setpoint is in force only while enabled (``*_enabled`` = 1);
    with a revert timeout (``*revert_s`` > 0) it reverts to idle (0 W, disabled) once that
    many seconds have passed since the last command. ``forced_w`` (set by the site during a grid outage) overrides the setpoint.
    """

    kind = DeviceKind.BATTERY

    def __init__(self, device: Device, soc: float = 0.5) -> None:
        super().__init__(device)
        r = device.ratings
        self.capacity_wh = float(r.capacity_wh or 0.0)
        self.max_charge_w = float(r.max_charge_w or 0.0)
        self.max_discharge_w = float(r.max_discharge_w or 0.0)
        self.soc_min, self.soc_max = r.soc_min, r.soc_max
        self.eta_c, self.eta_d = r.charge_efficiency, r.discharge_efficiency
        self.soc = float(soc)
        self.setpoint_w = 0.0
        self.setpoint_enabled = False
        self.revert_s = 0.0
        self.set_at: datetime | None = None
        self.forced_w: float | None = None
        self.charge_energy_wh = 0.0
        self.discharge_energy_wh = 0.0

    def _setpoint_active(self) -> bool:
        lapsed = physics.effective_setpoint(1.0, self._age_s(self.set_at), self.revert_s) == 0
        return self.setpoint_enabled and not lapsed

    def setpoint_in_force_w(self) -> float:
        return self.setpoint_w if self._setpoint_active() else 0.0

    def step(self, now: datetime, dt_s: float) -> None:
        # The setpoint in force at the start of the step holds for the whole step.
        target = self.forced_w if self.forced_w is not None else self.setpoint_in_force_w()
        if self.setpoint_enabled and not self._setpoint_active():
            self.setpoint_enabled = False  # a lapsed command disables itself (SunSpec revert)
        self.now = now
        p, soc = physics.battery_step(self.soc, target, dt_s, self.capacity_wh, self.max_charge_w,
                                      self.max_discharge_w, self.soc_min, self.soc_max,
                                      self.eta_c, self.eta_d)
        self.power_w, self.soc = float(p), float(soc)
        if p >= 0:
            self.discharge_energy_wh += p * dt_s / 3600.0
        else:
            self.charge_energy_wh += -p * dt_s / 3600.0

    def values(self) -> dict[str, float | str]:
        sp = self.setpoint_in_force_w()
        return {"power_w": self.power_w, "soc": self.soc, "capacity_wh": self.capacity_wh,
                "setpoint_w": sp, "setpoint_enabled": 1.0 if self._setpoint_active() else 0.0,
                "setpoint_revert_s": self.revert_s,
                "charge_energy_wh": self.charge_energy_wh,
                "discharge_energy_wh": self.discharge_energy_wh,
                "rating_w": max(self.max_charge_w, self.max_discharge_w),
                "max_charge_w": self.max_charge_w, "max_discharge_w": self.max_discharge_w,
                "voltage_v": self.device.ratings.voltage_v, "frequency_hz": NOMINAL_HZ,
                "operating_state": 4.0 if self.power_w else 8.0,  # 4 running, 8 standby
                "soh": 1.0, "serial": self.id}

    def _apply(self, v: dict[str, float]) -> None:
        if "setpoint_w" in v:
            self.setpoint_w = float(v["setpoint_w"])
        revert = _revert(v)
        if revert is not None:
            self.revert_s = revert
        enabled = _enabled(v)
        if enabled is not None:
            self.setpoint_enabled = enabled
        if "setpoint_w" in v or revert is not None or enabled:
            self.set_at = self.now  # the revert timer (re)starts with each command


# ---------------------------------------------------------------------------------- EV
@dataclass
class EvSession:
    """One car visit: plugged from ``arrive`` to ``depart`` wanting ``need_wh``."""

    arrive: datetime
    depart: datetime
    need_wh: float
    car_max_w: float
    delivered_wh: float = 0.0
    #: the car's battery [Wh] and its state of charge on arrival [0..1] (default: what leaves
    #: room for ``need_wh`` below 90 %)
    capacity_wh: float = 40_000.0
    arrive_soc: float | None = None

    def __post_init__(self) -> None:
        if self.arrive_soc is None:
            self.arrive_soc = min(max(0.9 - self.need_wh / self.capacity_wh, 0.1), 0.9)

    @property
    def soc(self) -> float:
        """Vehicle state of charge now [0..1] (charging raises it, V2H discharge lowers it)."""
        return min(max(float(self.arrive_soc) + self.delivered_wh / self.capacity_wh, 0.0), 1.0)


def daily_sessions(day_local: datetime, seed: int, car_max_w: float) -> list[EvSession]:
    """Deterministic sessions for one local day (at most one visit; ~75 % of days)."""
    rng = np.random.default_rng([seed, day_local.toordinal()])
    if rng.random() > 0.75:
        return []
    arrive = day_local + timedelta(hours=float(rng.uniform(7.5, 18.0)))
    depart = arrive + timedelta(hours=float(rng.uniform(1.5, 9.0)))
    return [EvSession(arrive, depart, float(rng.uniform(4000, 30000)), car_max_w)]


class EvChargerModel(DeviceModel):
    """AC charger with IEC 61851 states; cars come from a seeded daily schedule or :meth:`plug`.

    ``auto_sessions=False`` disables the schedule (tests plug cars explicitly).
    """

    kind = DeviceKind.EV_CHARGER

    def __init__(self, device: Device, tz: str = "UTC", seed: int = 0,
                 auto_sessions: bool = True) -> None:
        super().__init__(device)
        r = device.ratings
        self.max_current_a = float(r.max_current_a or 32.0)
        self.min_current_a = float(r.min_current_a if r.min_current_a is not None else 6.0)
        self.voltage_v, self.phases = r.voltage_v, r.phases
        self.car_max_w = float(r.power_w or self.max_current_a * self.voltage_v * self.phases)
        self.current_limit_a = self.max_current_a
        self.enabled = True
        #: V2H: discharge setpoint into the home [W] (0: none) and the vehicle SoC floor [0..1]
        self.discharge_w = 0.0
        self.soc_floor = self.V2H_SOC_FLOOR
        self.discharge_energy_wh = 0.0
        self.tz = ZoneInfo(tz)
        self.seed = seed
        self.auto_sessions = auto_sessions
        self.session: EvSession | None = None
        self.session_energy_wh = 0.0
        self.energy_wh = 0.0
        self.fault = False
        self._planned: dict[int, list[EvSession]] = {}
        self._restart_at: datetime | None = None

    def plug(self, need_wh: float, car_max_w: float | None = None,
             depart: datetime | None = None) -> None:
        """Plug a car in now (needs a prior step for the time)."""
        now = self.now or datetime.now(timezone.utc)
        self.session = EvSession(now, depart or now + timedelta(days=365), need_wh,
                                 car_max_w or self.car_max_w)
        self.session_energy_wh = 0.0

    def unplug(self) -> None:
        self.session = None

    #: After a supply interruption an EVSE re-runs its start-up before the car may draw again
    #: [s]. A PCS changing over to (or back from) island operation interrupts the supply:
    #: Japanese 自立運転 changeover is not seamless.
    RESTART_S = 120.0
    #: V2H units keep the car at or above this SoC when feeding the home [0..1]
    V2H_SOC_FLOOR = 0.3

    def supply_lost(self, now: datetime) -> None:
        """The supply was interrupted at ``now``: no charging for :attr:`RESTART_S`."""
        self._restart_at = now + timedelta(seconds=self.RESTART_S)

    def _schedule(self, now: datetime) -> None:
        local = now.astimezone(self.tz)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        key = day.toordinal()
        if key not in self._planned:
            self._planned = {key: daily_sessions(day, self.seed, self.car_max_w)}
        for s in self._planned[key]:
            if self.session is None and s.arrive <= now < s.depart:
                self.session = s
                self.session_energy_wh = 0.0

    def step(self, now: datetime, dt_s: float) -> None:
        self.now = now
        if self.session is not None and now >= self.session.depart:
            self.session = None
        if self.session is None and self.auto_sessions:
            self._schedule(now)
        s = self.session
        if s is None or self.fault:
            self.power_w = 0.0
            return
        if self._restart_at is not None and now < self._restart_at:
            self.power_w = 0.0
            return
        if self.discharge_w > 0:
            # V2H: the car feeds the home (power < 0 at the charger), down to its SoC floor
            self.power_w = -float(physics.ev_discharge_power(self.discharge_w, self.car_max_w, s.soc,
                                                             self.soc_floor, s.capacity_wh, dt_s))
            e = -self.power_w * dt_s / 3600.0
            s.delivered_wh -= e
            self.discharge_energy_wh += e
            return
        limit_a = self.current_limit_a if self.enabled else 0.0
        self.power_w = float(physics.ev_charge_power(limit_a, self.voltage_v,
                                                     self.phases, s.car_max_w,
                                                     s.need_wh - s.delivered_wh, dt_s,
                                                     self.min_current_a))
        e = self.power_w * dt_s / 3600.0
        s.delivered_wh += e
        self.session_energy_wh += e
        self.energy_wh += e

    @property
    def state(self) -> int:
        return int(physics.iec61851_state(self.session is not None, self.power_w > 0, self.fault))

    def values(self) -> dict[str, float | str]:
        s = self.session
        return {"power_w": self.power_w, "state": float(self.state),
                "plugged": 1.0 if s is not None else 0.0,
                "current_limit_a": self.current_limit_a,
                "session_energy_wh": self.session_energy_wh, "energy_wh": self.energy_wh,
                "voltage_v": self.voltage_v,
                "current_a": self.power_w / (self.voltage_v * self.phases),
                "charge_time_s": 0.0 if s is None or self.now is None
                else max((self.now - s.arrive).total_seconds(), 0.0)}

    def _apply(self, v: dict[str, float]) -> None:
        if "current_limit_a" in v:
            self.current_limit_a = min(max(0.0, float(v["current_limit_a"])), self.max_current_a)
        if "discharge_w" in v:
            self.discharge_w = min(max(0.0, float(v["discharge_w"])), self.car_max_w)
        enabled = _enabled(v)
        if enabled is not None:
            self.enabled = enabled


# ------------------------------------------------------------------------------- meter
class MeterModel(DeviceModel):
    """Meter whose power is set by the site each step; integrates import/export energy."""

    kind = DeviceKind.METER

    def __init__(self, device: Device, frequency_hz: float = NOMINAL_HZ) -> None:
        super().__init__(device)
        self.voltage_v = device.ratings.voltage_v
        self.frequency_hz = frequency_hz
        self.import_energy_wh = 0.0
        self.export_energy_wh = 0.0

    def set_power(self, power_w: float) -> None:
        self.power_w = float(power_w)

    def step(self, now: datetime, dt_s: float) -> None:
        self.now = now
        e = self.power_w * dt_s / 3600.0
        if e >= 0:
            self.import_energy_wh += e
        else:
            self.export_energy_wh += -e

    def values(self) -> dict[str, float | str]:
        phases = self.device.ratings.phases
        current = abs(self.power_w) / (self.voltage_v * phases) if self.voltage_v > 0 else 0.0
        return {"power_w": self.power_w, "import_energy_wh": self.import_energy_wh,
                "export_energy_wh": self.export_energy_wh, "voltage_v": self.voltage_v,
                "voltage_l2_v": self.voltage_v, "voltage_l3_v": self.voltage_v,
                "current_a": current * phases, "current_l1_a": current,
                "power_l1_w": self.power_w / phases, "frequency_hz": self.frequency_hz}
