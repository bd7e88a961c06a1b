"""A whole simulated site: device models + Modbus servers built from the same register maps.

Recipe: one model per config device (:mod:`simulators.devices`); one
:class:`drivers.server.ModbusImageServer` per distinct TCP host:port, serving each device under
its configured device id; every simulated second the physics task steps the models, sums
the site's power balance into the meters and re-encodes each model's :meth:`values` with the
device's :class:`RegisterMap` into the served image. Client writes are decoded with the same
map and applied to the model.

Power balance (W, grid > 0 import): ``grid = load + ev − pv − battery``. With
:attr:`SimulatedSite.grid_outage` set the site is islanded: grid meters read 0 and the
batteries are forced to cover ``load + ev − pv`` (anything they cannot cover is reported
in :attr:`SimulatedSite.island_imbalance_w`); with :attr:`SimulatedSite.island_load_w` set,
the load is first shed to that many watts (critical circuits only).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import zlib
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import jpholiday
import numpy as np

from drivers.registermap import RegisterMap, load_map
from drivers.server import FAULTS, ModbusImageServer
from simulators import physics
from simulators.clock import SimClock
from simulators.ocpp_fleet import OcppStations
from simulators.devices import (
    NOMINAL_HZ,
    BatteryModel,
    CloudTrace,
    DeviceModel,
    EvChargerModel,
    MeterModel,
    PvModel,
)
from vpp.config import Device, EchonetConnection, SiteConfig, TcpConnection

log = logging.getLogger(__name__)

#: Mean consumption per home [W] (~14 kWh/day, a Japanese detached house).
HOUSEHOLD_MEAN_W = 600.0
#: Mean facility consumption as a fraction of the grid import limit [-].
FACILITY_MEAN_FRACTION = 0.15


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def with_free_ports(config: SiteConfig) -> SiteConfig:
    """Copy of ``config`` with each distinct TCP host:port moved to a free loopback port.

    Devices that shared a connection still share one (different device ids on one port).
    """
    if any(d.protocol == "ocpp" for d in config.devices) and config.ocpp.port != 0:
        config = config.model_copy(update={"ocpp": config.ocpp.model_copy(update={"port": 0})})
    assigned: dict[tuple[str, int], int] = {}
    held: list[socket.socket] = []  # keep each probe bound so the kernel cannot hand it out twice
    devices: list[Device] = []
    try:
        for d in config.devices:
            c = d.connection
            if isinstance(c, TcpConnection) and d.protocol == "modbus":
                key = (c.host, c.port)
                if key not in assigned:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    held.append(s)
                    s.bind((c.host, 0))
                    assigned[key] = s.getsockname()[1]
                d = d.with_connection(port=assigned[key])
            devices.append(d)
    finally:
        for s in held:
            s.close()
    return config.model_copy(update={"devices": devices}, deep=True)


def _group(d: Device) -> str | None:
    return d.home


class SimulatedSite:
    """All simulated devices of one site config, served over Modbus TCP.

    Parameters
    ----------
    config : SiteConfig
        Devices (with RTU connections skipped: they cannot be simulated on TCP), PV arrays,
        site location and grid limits.
    clock : SimClock
        Shared simulated clock; a manual clock (speed 0) is driven by :meth:`step`.
    cloud : callable, optional
        ``cloud(now) -> clear-sky index [0..1]``; default clear sky.
    seed : int
        Seed for load noise and EV arrivals.
    load_mean_w : float, optional
        Mean consumption per load group [W]; default 600 W per home, or 15 % of the grid
        import limit for a site without homes (a facility).
    auto_ev_sessions : bool
        Let cars arrive on a seeded daily schedule (off: tests plug cars explicitly).
    slow_delay_s : float
        Response delay of the ``"slow"`` fault [s].
    """

    def __init__(self, config: SiteConfig, clock: SimClock, *, cloud: CloudTrace | None = None,
                 seed: int = 0, load_mean_w: float | None = None,
                 auto_ev_sessions: bool = True, slow_delay_s: float = 5.0) -> None:
        self.config = config
        self.clock = clock
        self.seed = seed
        self.slow_delay_s = slow_delay_s
        self.grid_outage = False
        #: forced meter readings per meter id (``voltage_v`` [V], ``frequency_hz`` [Hz]): a glitch
        self.meter_glitch: dict[str, dict[str, float]] = {}
        #: Islanded, the transfer switch sheds everything but the critical circuits: the
        #: site's consumption is capped at this [W] (``None``: nothing is shed).
        self.island_load_w: float | None = None
        self.island_imbalance_w = 0.0
        self._was_islanded = False
        self.models: dict[str, DeviceModel] = {}
        self._maps: dict[str, RegisterMap] = {}
        self._devices: dict[str, Device] = {}
        #: the OCPP stations (``protocol: ocpp`` devices): they connect to the service's
        #: central system once it is up (:meth:`attach_ocpp`), not served over Modbus
        self.ocpp = OcppStations(config.devices, seed=seed, auto_sessions=auto_ev_sessions, clock=clock)
        for d in config.devices:
            if d.protocol not in ("modbus", "echonet_lite"):
                continue
            if not isinstance(d.connection, (TcpConnection, EchonetConnection)):
                log.warning("device %s: RTU connections are not simulated, skipped", d.id)
                continue
            self._devices[d.id] = d
            self.models[d.id] = self._build_model(d, cloud, auto_ev_sessions)
        homes = sorted({d.home for d in self._devices.values() if d.home})
        self.load_kind = "household" if homes else "facility"
        mean = load_mean_w if load_mean_w is not None else (
            HOUSEHOLD_MEAN_W if homes else FACILITY_MEAN_FRACTION * config.grid.import_limit_w)
        self._load_groups: dict[str | None, float] = {h: mean for h in homes} or {None: mean}
        #: The config's switchable load groups (``loads:``; facility sites only): when present
        #: they *are* the site's load, critical groups flat at their nominal draw, the others on
        #: the facility profile; :meth:`switch_load` is their relay.
        self.switched = {g.id: g for g in config.loads} if not homes else {}
        self.group_on: dict[str, bool] = {g: True for g in self.switched}
        self.group_w: dict[str, float] = {g: 0.0 for g in self.switched}
        self.load_w: dict[str | None, float] = {g: 0.0 for g in self._load_groups}
        self._tz = ZoneInfo(config.site.timezone)
        self.endpoints: dict[str, tuple[str, int, int]] = {}
        self._servers: dict[tuple[str, int], ModbusImageServer] = {}
        self._unit_to_id: dict[tuple[tuple[str, int], int], str] = {}
        self._last: datetime | None = None
        self._task: asyncio.Task | None = None
        self._fault_tasks: set[asyncio.Future] = set()
        #: the ECHONET Lite homes (one emulated node per home address), built by start()
        self.echonet = None
        #: pre-bound UDP sockets per ECHONET node host (see simulators.echonet_site.free_echonet_block)
        self.echonet_sockets: dict[str, socket.socket] = {}
        #: faults the ECHONET objects have from the start (device id -> fault name, see inject)
        self.echonet_faults: dict[str, str] = {}

    # --------------------------------------------------------------------- building
    def _build_model(self, d: Device, cloud: CloudTrace | None, auto_ev: bool) -> DeviceModel:
        cfg = self.config
        if d.kind == "pv":
            arrays = [a for a in cfg.pv_arrays if a.inverter == d.id]
            return PvModel(d, cfg.site, arrays, cloud)
        if d.kind == "battery":
            return BatteryModel(d)
        if d.kind == "ev_charger":
            return EvChargerModel(d, cfg.site.timezone, seed=self.seed + zlib.crc32(d.id.encode()),
                                  auto_sessions=auto_ev)
        return MeterModel(d)

    def model(self, device_id: str) -> DeviceModel:
        return self.models[device_id]

    def register_map(self, device_id: str) -> RegisterMap:
        """The register map a device is served with (the one its driver reads it with)."""
        if device_id not in self._maps:
            self._maps[device_id] = load_map(self._devices[device_id].register_map)
        return self._maps[device_id]

    def image(self, device_id: str) -> dict[tuple[str, int], int]:
        """The model's current values encoded as a register image."""
        return self.register_map(device_id).encode(self.models[device_id].values())

    # -------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Bind every server (port 0 → a free port) and start the physics task."""
        self._step_models()
        by_conn: dict[tuple[str, int], list[str]] = defaultdict(list)
        for dev_id, d in self._devices.items():
            c = d.connection
            if isinstance(c, TcpConnection):
                by_conn[(c.host, c.port)].append(dev_id)
        try:
            if any(isinstance(d.connection, EchonetConnection) for d in self._devices.values()):
                from simulators.echonet_site import EchonetHomes

                self.echonet = EchonetHomes(self, slow_delay_s=self.slow_delay_s)
                await self.echonet.start(self.echonet_sockets)
                for dev_id, fault in self.echonet_faults.items():
                    self.echonet.inject(dev_id, fault)
            for (host, port), ids in by_conn.items():
                srv = ModbusImageServer(host, port, on_write=self._writer((host, port)),
                                        slow_delay_s=self.slow_delay_s)
                for dev_id in ids:
                    unit = self._devices[dev_id].connection.device_id
                    srv.add_device(unit, self.image(dev_id),
                                   writable=self.register_map(dev_id).writable())
                    self._unit_to_id[((host, port), unit)] = dev_id
                bound = await srv.start()
                self._servers[(host, port)] = srv
                for dev_id in ids:
                    self.endpoints[dev_id] = (host, bound, self._devices[dev_id].connection.device_id)
        except BaseException:
            await self.stop()
            raise
        if not self.clock.manual:
            self._task = asyncio.create_task(self._run(), name="sim-physics")

    def attach_ocpp(self, url: str) -> None:
        """Connect the OCPP stations to the central system at ``url`` (``ws://…/ocpp/``)."""
        if len(self.ocpp):
            self.ocpp.attach(url)

    async def stop(self) -> None:
        await self.ocpp.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for srv in self._servers.values():
            await srv.stop()
        self._servers.clear()
        if self.echonet is not None:
            self.echonet.stop()

    async def __aenter__(self) -> "SimulatedSite":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _run(self) -> None:
        # Steps once per simulated second, but never more often than 5 Hz wall time.
        period_s = max(1.0, 0.2 * self.clock.speed)
        while True:
            await self.clock.sleep(period_s)
            try:
                self._step_models()
                self._refresh()
            except Exception:  # keep the simulator alive; the next step may succeed
                log.exception("simulation step failed")

    # --------------------------------------------------------------------- physics
    def step(self, dt_s: float = 1.0) -> datetime:
        """Advance a manual clock by ``dt_s`` [s] (in ≤ 60 s sub-steps), step and refresh."""
        if not self.clock.manual:
            self._step_models()
            self._refresh()
            return self.clock.now()
        remaining = float(dt_s)
        while True:
            h = min(remaining, 60.0)
            self.clock.advance(h)
            self._step_models()
            remaining -= h
            if remaining <= 0:
                break
        self._refresh()
        return self.clock.now()

    def _loads(self, now: datetime) -> dict[str | None, float]:
        local = now.astimezone(self._tz)
        weekend = local.weekday() >= 5 or jpholiday.is_holiday(local.date())
        minute = int(now.timestamp() // 60)
        hour = local.hour + local.minute / 60 + local.second / 3600
        out = {}
        if self.switched:
            for i, (gid, g) in enumerate(self.switched.items()):
                kind_w = g.nominal_w if g.critical else float(physics.load_profile(
                    hour, weekend, g.nominal_w, "facility", seed=self.seed * 1000 + i, minute_index=minute))
                self.group_w[gid] = kind_w if self.group_on[gid] else 0.0
            return {None: float(sum(self.group_w.values()))}
        for i, (g, mean) in enumerate(self._load_groups.items()):
            out[g] = float(physics.load_profile(hour, weekend, mean, self.load_kind,
                                                seed=self.seed * 1000 + i, minute_index=minute))
        return out

    def switch_load(self, group_id: str, on: bool) -> None:
        """The relay of load group ``group_id``: switch it on or off (shed)."""
        if group_id not in self.group_on:
            raise KeyError(f"no switchable load group {group_id!r}")
        self.group_on[group_id] = bool(on)

    def critical_w(self) -> float:
        """Draw of the critical load groups now [W]."""
        return float(sum(w for gid, w in self.group_w.items() if self.switched[gid].critical))

    def _step_models(self) -> None:
        now = self.clock.now()
        dt = 0.0 if self._last is None else max((now - self._last).total_seconds(), 0.0)
        self._last = now
        self.load_w = self._loads(now)
        if self.grid_outage != self._was_islanded:
            # the changeover to/from island operation interrupts the supply of the EVSEs
            self._was_islanded = self.grid_outage
            for m in self.models.values():
                if isinstance(m, EvChargerModel):
                    m.supply_lost(now)
            self.ocpp.supply_lost()
        if self.grid_outage and self.island_load_w is not None:
            total = sum(self.load_w.values())
            if total > self.island_load_w:
                k = self.island_load_w / total
                self.load_w = {g: w * k for g, w in self.load_w.items()}
        for m in self.models.values():
            if isinstance(m, (PvModel, EvChargerModel)):
                m.step(now, dt)
        groups = set(self.load_w) | {_group(d) for d in self._devices.values()}
        ev, pv = self._sums(EvChargerModel), self._sums(PvModel)
        self.ocpp.step(dt)
        for sid, d in self.ocpp.devices.items():
            groups.add(d.home)
            ev[d.home] += self.ocpp.power_w(sid)
        net = {g: self.load_w.get(g, 0.0) + ev.get(g, 0.0) - pv.get(g, 0.0) for g in groups}
        bats = [m for m in self.models.values() if isinstance(m, BatteryModel)]
        rated = sum(b.max_discharge_w for b in bats) or 1.0
        for b in bats:
            # Islanded, the whole site shares one feeder: batteries cover its net load
            # in proportion to their rating.
            b.forced_w = sum(net.values()) * b.max_discharge_w / rated if self.grid_outage else None
            b.step(now, dt)
        bat = self._sums(BatteryModel)
        balance = {g: net[g] - bat.get(g, 0.0) for g in groups}
        total = sum(balance.values())
        self.island_imbalance_w = total if self.grid_outage else 0.0
        for m in self.models.values():
            if isinstance(m, MeterModel):
                g = m.device.home
                p = balance.get(g, 0.0) if g is not None else total
                islanded_grid_meter = self.grid_outage and m.device.role in (None, "grid")
                m.set_power(0.0 if islanded_grid_meter else p)
                # the grid side of the connection is dead: no voltage, no frequency
                m.voltage_v = 0.0 if islanded_grid_meter else m.device.ratings.voltage_v
                m.frequency_hz = 0.0 if islanded_grid_meter else NOMINAL_HZ
                glitch = self.meter_glitch.get(m.device.id)
                if glitch:  # a faulty meter reading (scenario fault), whatever the grid does
                    m.voltage_v = glitch.get("voltage_v", m.voltage_v)
                    m.frequency_hz = glitch.get("frequency_hz", m.frequency_hz)
                m.step(now, dt)

    def _sums(self, cls: type) -> dict[str | None, float]:
        """Power [W] of the models of ``cls`` summed per load group (one pass: towns have
        thousands of models)."""
        out: dict[str | None, float] = defaultdict(float)
        for m in self.models.values():
            if isinstance(m, cls):
                out[_group(m.device)] += m.power_w
        return out

    def _sum(self, group: str | None, cls: type) -> float:
        return float(np.sum([m.power_w for m in self.models.values()
                             if isinstance(m, cls) and _group(m.device) == group] or [0.0]))

    def grid_power_w(self) -> float:
        """Site power at the grid connection [W], > 0 import (0 when islanded)."""
        if self.grid_outage:
            return 0.0
        pv = sum(m.power_w for m in self.models.values() if isinstance(m, PvModel))
        bat = sum(m.power_w for m in self.models.values() if isinstance(m, BatteryModel))
        ev = sum(m.power_w for m in self.models.values() if isinstance(m, EvChargerModel))
        ev += sum(self.ocpp.power_w(i) for i in self.ocpp.devices)
        return float(physics.grid_power(sum(self.load_w.values()), pv, bat, ev))

    def _refresh(self) -> None:
        if self.echonet is not None:
            self.echonet.step()
        for (conn, unit), dev_id in self._unit_to_id.items():
            srv = self._servers.get(conn)
            if srv is not None:
                srv.update(unit, self.image(dev_id))

    # ------------------------------------------------------------------ Modbus hooks
    def _writer(self, conn: tuple[str, int]) -> Callable[[int, str, int, list[int]], None]:
        def on_write(unit: int, table: str, address: int, words: list[int]) -> None:
            dev_id = self._unit_to_id[(conn, unit)]
            before = self._servers[conn].image(unit)  # scale factors, ratings for % values
            named = self.register_map(dev_id).decode_write(table, address, words, before)
            self.models[dev_id].apply_write(named)
        return on_write

    def inject(self, device_id: str, fault: str | None, *, exception_code: int = 0x04) -> asyncio.Future:
        """Inject a Modbus fault (``offline``, ``slow``, ``exception``, ``frozen``) or clear it.

        Applies at once to requests; the returned future completes when the listener state
        follows (``offline`` on every device of a port closes that port).
        """
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        if self.echonet is not None and device_id in self.echonet.objects:
            return self.echonet.inject(device_id, fault)
        host, _, unit = self.endpoints[device_id]
        c = self._devices[device_id].connection
        fut = self._servers[(c.host, c.port)].set_fault(unit, fault, exception_code=exception_code)
        self._fault_tasks.add(fut)
        fut.add_done_callback(self._fault_tasks.discard)
        return fut

    def server_stats(self, device_id: str) -> dict[str, int]:
        c = self._devices[device_id].connection
        return self._servers[(c.host, c.port)].stats(c.device_id)
