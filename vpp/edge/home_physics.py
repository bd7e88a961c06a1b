"""A lightweight town of homes simulated inside an edge agent (for the bus benchmark and the
fault tests that need many homes): vectorised PV, load and battery physics
(:mod:`simulators.physics`) with a simple local controller, behind the :class:`TownPort`
interface.

Local control per home, every step: the battery covers the home's net load
(self-consumption) unless a central command is in force (its site power is split across the
batteries by headroom, :class:`~vpp.edge.commands.CommandBook`); the reserve floor is the
battery's lower SoC limit in the physics, so no command can take a battery below it. This is
not the site controller of ``vpp run`` (a :class:`~vpp.edge.port.RuntimePort` runs that);
it exists so 14 towns × 721 homes fit on two cores.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from drivers.protocols import DeviceKind, Snapshot
from simulators.physics import battery_step, load_profile
from vpp.edge.commands import CommandBook, TownCapacity
from vpp.errors import ServiceError
from vpp.market.dispatch_records import BatteryState


class HomesTown:
    """``homes`` homes of town ``town`` on ``clock`` (a ``() -> datetime``), stepped by
    :meth:`step` [s]. Telemetry per step: one battery snapshot per home (``soc``,
    ``power_w``) and one meter snapshot per home (``power_w``, > 0 import)."""

    def __init__(self, town: str, homes: int, clock: Callable[[], datetime], *, seed: int = 0,
                 floor_pct: float = 30.0, utc_offset_h: float = 9.0) -> None:
        rng = np.random.default_rng(seed)
        self.town, self.clock, self.n = town, clock, int(homes)
        self.ids = [f"{town}-h{i:04d}" for i in range(self.n)]
        self.capacity_wh = rng.choice([5000.0, 7000.0, 9800.0, 13500.0], self.n)
        self.max_w = np.where(self.capacity_wh > 8000, 5000.0, 3000.0)
        self.soc = rng.uniform(0.5, 0.9, self.n)
        self.pv_kwp = rng.choice([0.0, 3.0, 4.5, 6.0], self.n)
        self.load_mean_w = rng.uniform(300.0, 700.0, self.n)
        self.config_floor_pct = self.floor_pct = float(floor_pct)
        self.storm = False
        self.utc_offset_h = utc_offset_h
        self.battery_w = np.zeros(self.n)
        self.grid_w = np.zeros(self.n)
        self.book: CommandBook | None = None
        self.alarms: dict[str, str] = {}
        self.alarm_log: list[tuple[str, bool]] = []
        self.sources: dict[str, int] = {}  #: steps driven by each source ("central", "local")
        self._buf: list[Snapshot] = []
        self.min_soc_margin = math.inf  #: smallest soc - floor seen after a step [fraction]

    # ------------------------------------------------------------------ physics
    def step(self, dt_s: float) -> None:
        now = self.clock()
        local_h = ((now.hour + now.minute / 60 + self.utc_offset_h) % 24)
        pv = self.pv_kwp * 1000.0 * max(0.0, math.sin(math.pi * (local_h - 6.0) / 12.0)) * 0.8
        minute = int(now.timestamp() // 60)
        load = np.asarray(load_profile(np.full(self.n, local_h), np.zeros(self.n, bool), self.load_mean_w,
                                       seed=zlib.crc32(self.town.encode()) % 1000, minute_index=np.full(self.n, minute)))
        want = load - pv  # self-consumption: cover the net load
        props = self.book(now) if self.book is not None else {}
        central = bool(props) and next(iter(props.values())).reason.startswith("central")
        if props:
            want = np.array([props.get(i).setpoint_w if i in props else w for i, w in zip(self.ids, want)])
        self.sources["central" if central else "local"] = self.sources.get("central" if central else "local", 0) + 1
        floor = self.floor_pct / 100.0
        p, self.soc = battery_step(self.soc, want, dt_s, self.capacity_wh, self.max_w, self.max_w,
                                   soc_min=np.minimum(floor, self.soc), soc_max=1.0)
        self.battery_w = np.asarray(p)
        self.grid_w = load - pv - self.battery_w
        self.min_soc_margin = min(self.min_soc_margin, float(np.min(self.soc - np.minimum(floor, self.soc))))
        for i, dev in enumerate(self.ids):
            self._buf.append(Snapshot(dev, DeviceKind.BATTERY, now, {"soc": float(self.soc[i]),
                                                                     "power_w": float(self.battery_w[i])}))
            self._buf.append(Snapshot(dev + "-m", DeviceKind.METER, now, {"power_w": float(self.grid_w[i])}))

    # ------------------------------------------------------------------ TownPort
    def now(self) -> datetime:
        return self.clock()

    def batteries(self, now: datetime) -> list[BatteryState]:
        f = self.floor_pct / 100.0
        return [BatteryState(i, float(s), f, 1.0, float(c), float(m), float(m))
                for i, s, c, m in zip(self.ids, self.soc, self.capacity_wh, self.max_w)]

    def capacity(self, now: datetime) -> TownCapacity:
        return TownCapacity(self.batteries(now), self.config_floor_pct)

    def drain_telemetry(self) -> list[Snapshot]:
        out, self._buf = self._buf, []
        return out

    def status(self) -> dict[str, Any]:
        f = self.floor_pct / 100.0
        return {"homes": self.n, "soc": float(np.average(self.soc, weights=self.capacity_wh)),
                "headroom_wh": float(np.sum(np.maximum(self.soc - f, 0) * self.capacity_wh)),
                "room_wh": float(np.sum((1.0 - self.soc) * self.capacity_wh)),
                "max_discharge_w": float(self.max_w.sum()), "max_charge_w": float(self.max_w.sum()),
                "battery_w": float(self.battery_w.sum()), "grid_w": float(self.grid_w.sum()),
                "floor_pct": self.floor_pct, "config_floor_pct": self.config_floor_pct, "storm": self.storm,
                "alarms": sorted(self.alarms)}

    def policy_state(self) -> dict[str, Any]:
        return {"floor_pct": self.floor_pct, "storm": self.storm}

    def set_policy(self, body: Mapping[str, Any]) -> dict[str, Any]:
        floor = body.get("floor_pct")
        if floor is not None:
            if not 0 <= floor <= 100:
                raise ServiceError(f"floor_pct must be between 0 and 100 %, got {floor}")
            self.floor_pct = max(float(floor), self.config_floor_pct)
        if body.get("storm") is not None:
            self.storm = bool(body["storm"])
        return self.policy_state()

    def install(self, book: CommandBook) -> None:
        self.book = book
        book.batteries = self.batteries

    def alarm(self, key: str, message: str, active: bool) -> None:
        self.alarm_log.append((key, active))
        if active:
            self.alarms[key] = message
        else:
            self.alarms.pop(key, None)


class ManualClock:
    """A clock the caller advances (tests and the benchmark step town time explicitly)."""

    def __init__(self, start: datetime) -> None:
        self.t = start

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> datetime:
        self.t += timedelta(seconds=seconds)
        return self.t
