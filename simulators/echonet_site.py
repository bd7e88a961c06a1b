"""ECHONET Lite homes of a simulated site: the physics models of :mod:`simulators.devices`
served as ECHONET device objects, one :class:`~simulators.echonet_node.EmulatedNode` per home.

The same models the Modbus servers encode (battery, PV, V2H/EV, meter) feed the objects'
properties; ECHONET's conventions are applied here (battery D3 + charging, energy counts in
0.001 kWh, smart meter counts in 0.01 kWh with coefficient 1). Sets become model writes:
battery DA charge/discharge with EB/EC is a setpoint in force (standby/auto: none), PV A1 a
power limit, V2H DA charge with EB a current limit, DA discharge with EC a discharge into the
home (bounded by the unit's rating and the car's SoC floor in the EV model). A maker's ``mode_reverts_after_s`` quirk
reverts the battery mode on simulated time.

Addresses: :func:`free_echonet_block` picks a random ``127.a.b.0/24``-style block whose
``host:3610`` UDP sockets it could bind (held until the nodes take them over), so that test
sessions running side by side never collide; :func:`with_echonet_hosts` moves a config's
ECHONET homes onto it.
"""
from __future__ import annotations

import logging
import random
import socket
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from drivers.echonet.objects import load_object
from simulators.devices import BatteryModel, EvChargerModel, MeterModel, PvModel
from simulators.echonet_node import PORT, EmulatedNode, EmulatedObject

log = logging.getLogger(__name__)

METER_UNIT_KWH = 0.01  # E1 = 0x02: one count is 0.01 kWh


def free_echonet_block(count: int, port: int = PORT, tries: int = 50) -> list[socket.socket]:
    """``count`` UDP sockets bound to ``127.a.b.c:port`` on consecutive addresses of a random
    block (never 127.0.0.x); retried elsewhere when any address is taken."""
    rng = random.SystemRandom()  # not the seeded global generator: parallel sessions must differ
    for _ in range(tries):
        a, b = rng.randint(1, 254), rng.randint(0, 255 - (count + 250) // 251)
        socks: list[socket.socket] = []
        try:
            for i in range(count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((f"127.{a}.{b + i // 251}.{i % 251 + 2}", port))
            return socks
        except OSError:
            for s in socks:
                s.close()
    raise RuntimeError(f"no free block of {count} loopback addresses for port {port}")


def echonet_homes(config) -> dict[str, list]:
    """``{node host: [device configs]}`` of the config's ECHONET devices, in config order."""
    out: dict[str, list] = {}
    for d in config.devices:
        if d.protocol == "echonet_lite":
            out.setdefault(d.connection.host, []).append(d)
    return out


def with_echonet_hosts(config, hosts: list[str]):
    """Copy of ``config`` with its ECHONET nodes moved onto ``hosts`` (same order)."""
    old = list(echonet_homes(config))
    if len(hosts) < len(old):
        raise ValueError(f"{len(old)} ECHONET nodes but {len(hosts)} addresses")
    move = dict(zip(old, hosts))
    devices = [d.with_connection(host=move[d.connection.host]) if d.protocol == "echonet_lite" else d
               for d in config.devices]
    return config.model_copy(update={"devices": devices}, deep=True)


def on_free_block(config):
    """``(config moved onto a free loopback block, {host: bound socket})`` for a config with
    ECHONET homes (hand the sockets to ``SimulatedSite.echonet_sockets``); unchanged otherwise."""
    homes = echonet_homes(config)
    if not homes:
        return config, {}
    socks = free_echonet_block(len(homes))
    hosts = [s.getsockname()[0] for s in socks]
    return with_echonet_hosts(config, hosts), dict(zip(hosts, socks))


# ------------------------------------------------------------------------- per kind
def _battery(m: BatteryModel, site) -> EmulatedObject:
    state = {"mode": "standby", "charge_w": 0, "discharge_w": 0, "at": None}

    def apply() -> None:
        mode = state["mode"]
        w = (state["discharge_w"] if mode == "discharge"
             else -state["charge_w"] if mode in ("charge", "rapid_charge") else 0)
        m.apply_write({"setpoint_w": float(w), "setpoint_enabled": 1.0 if w else 0.0, "setpoint_revert_s": 0.0})

    def on_set(name: str, value: Any) -> bool:
        if name == "operation_mode":
            if value not in ("charge", "rapid_charge", "discharge", "standby", "auto"):
                return False
            state["mode"], state["at"] = value, m.now
        elif name == "charge_power_w":
            if not 0 <= value <= m.max_charge_w:
                return False
            state["charge_w"] = value
        elif name == "discharge_power_w":
            if not 0 <= value <= m.max_discharge_w:
                return False
            state["discharge_w"] = value
        elif name != "external_control":
            return True
        apply()
        return True

    def source() -> dict[str, Any]:
        p = m.power_w
        working = "discharge" if p > 1 else "charge" if p < -1 else "standby"
        return {"operation_status": "on", "fault_status": "no_fault",
                "instant_power_w": round(-p), "remaining_pct": round(m.soc * 100),
                "remaining_wh": round(m.soc * m.capacity_wh), "rated_energy_wh": round(m.capacity_wh),
                "ac_charged_kwh_milli": round(m.charge_energy_wh),
                "ac_discharged_kwh_milli": round(m.discharge_energy_wh),
                "ac_chargeable_wh": round(max(m.soc_max - m.soc, 0) * m.capacity_wh),
                "ac_dischargeable_wh": round(max(m.soc - m.soc_min, 0) * m.capacity_wh),
                "charge_power_range_w": (0, round(m.max_charge_w)),
                "discharge_power_range_w": (0, round(m.max_discharge_w)),
                "operation_mode": state["mode"], "working_state": working,
                "charge_power_w": state["charge_w"], "discharge_power_w": state["discharge_w"],
                "grid_connection": "reverse_flow_ok",
                "island_operation": "islanded" if site.grid_outage else "interconnected"}

    obj = EmulatedObject(m.device.register_map, m.device.connection.instance, source=source, on_set=on_set)
    obj.values.update(external_control="internal") if "external_control" in obj.obj.by_name else None
    obj.state = state  # type: ignore[attr-defined]
    return obj


def _pv(m: PvModel) -> EmulatedObject:
    def on_set(name: str, value: Any) -> bool:
        if name == "output_limit_w":
            m.apply_write({"power_limit_w": float(value), "power_limit_enabled": 1.0 if value < m.rating_w else 0.0,
                           "power_limit_revert_s": 0.0})
        elif name == "output_limit_pct":
            if value > 100:
                return False
            m.apply_write({"power_limit_w": value / 100 * m.rating_w,
                           "power_limit_enabled": 1.0 if value < 100 else 0.0,
                           "power_limit_revert_s": 0.0})
        return True

    def source() -> dict[str, Any]:
        limit = m.limit_in_force_w()
        limited = limit < m.rating_w and m.power_w >= limit - 1
        return {"operation_status": "on", "fault_status": "no_fault", "instant_generation_w": round(m.power_w),
                "cumulative_generation": round(m.energy_wh), "rated_output_w": round(m.rating_w),
                "output_limit_w": round(limit), "output_limit_pct": min(100, round(100 * limit / m.rating_w)),
                "suppression_state": "output_control" if limited else "none"}

    return EmulatedObject(m.device.register_map, m.device.connection.instance, source=source, on_set=on_set)


def _v2h(m: EvChargerModel) -> EmulatedObject:
    volts = m.voltage_v * m.phases
    state = {"mode": "charge", "charge_w": round(m.max_current_a * volts), "discharge_w": 0}

    def on_set(name: str, value: Any) -> bool:
        if name == "operation_mode":
            if value not in ("charge", "discharge", "standby", "idle"):
                return False
            state["mode"] = value
        elif name == "charge_power_w":
            state["charge_w"] = value
        elif name == "discharge_power_w":
            state["discharge_w"] = value
        charging, discharging = state["mode"] == "charge", state["mode"] == "discharge"
        m.apply_write({"current_limit_a": state["charge_w"] / volts if charging else 0.0,
                       "charge_enabled": 1.0 if charging else 0.0,
                       "discharge_w": float(state["discharge_w"]) if discharging else 0.0})
        return True

    def source() -> dict[str, Any]:
        s = m.session
        pct = None if s is None else round(100 * s.soc)
        room = None if s is None else max(0, round(100 * (s.soc - m.soc_floor)))
        return {"operation_status": "on", "fault_status": "no_fault",
                "vehicle_state": "not_connected" if s is None else "both",
                "instant_power_w": round(m.power_w), "charged_kwh_milli": round(m.session_energy_wh),
                "discharged_kwh_milli": round(m.discharge_energy_wh), "operation_mode": state["mode"],
                "charge_power_w": state["charge_w"], "discharge_power_w": state["discharge_w"],
                "rated_charge_w": round(m.car_max_w), "rated_discharge_w": round(m.car_max_w),
                "vehicle_remaining_pct": pct, "vehicle_dischargeable_pct": room}

    return EmulatedObject(m.device.register_map, m.device.connection.instance, source=source, on_set=on_set)


class _HalfHourLatch:
    """The smart meter's fixed-time readings: cumulative counts latched at each :00/:30."""

    def __init__(self, m: MeterModel, tz: ZoneInfo) -> None:
        self.m, self.tz = m, tz
        self.slot: datetime | None = None
        self.readings: dict[str, tuple[datetime, int]] = {}
        self.history: dict[Any, list[int | None]] = {}

    def update(self) -> None:
        now = self.m.now
        if now is None:
            return
        local = now.astimezone(self.tz)
        slot = local.replace(minute=30 if local.minute >= 30 else 0, second=0, microsecond=0)
        if slot == self.slot:
            return
        self.slot = slot
        naive = slot.replace(tzinfo=None)
        imp, exp = _count(self.m.import_energy_wh), _count(self.m.export_energy_wh)
        self.readings = {"import": (naive, imp), "export": (naive, exp)}
        day = self.history.setdefault(naive.date(), [None] * 48)
        day[naive.hour * 2 + naive.minute // 30] = imp
        for old in [d for d in self.history if d < naive.date() - timedelta(days=7)]:
            del self.history[old]


def _count(wh: float) -> int:
    return int(wh / (METER_UNIT_KWH * 1000.0)) % 100_000_000  # 8 effective digits


def _meter(m: MeterModel, tz: ZoneInfo) -> EmulatedObject:
    latch = _HalfHourLatch(m, tz)

    def source() -> dict[str, Any]:
        latch.update()
        out = {"operation_status": "on", "fault_status": "no_fault", "coefficient": 1, "effective_digits": 8,
               "energy_unit_kwh": METER_UNIT_KWH, "instant_power_w": round(m.power_w),
               "import_count": _count(m.import_energy_wh), "export_count": _count(m.export_energy_wh)}
        if latch.readings:
            out["import_at_half_hour"] = latch.readings["import"]
            out["export_at_half_hour"] = latch.readings["export"]
            day = latch.slot.date() - timedelta(days=int(obj.values.get("history_day") or 0))
            out["import_history"] = (int(obj.values.get("history_day") or 0),
                                     tuple(latch.history.get(day, [None] * 48)))
        return out

    obj = EmulatedObject(m.device.register_map, m.device.connection.instance, source=source,
                         on_set=lambda name, v: name == "history_day" and 0 <= v <= 99)
    obj.values["history_day"] = 0
    return obj


def build_object(model, site) -> EmulatedObject:
    """The ECHONET object serving ``model`` (a device model of ``site``)."""
    if isinstance(model, BatteryModel):
        return _battery(model, site)
    if isinstance(model, PvModel):
        return _pv(model)
    if isinstance(model, EvChargerModel):
        return _v2h(model)
    return _meter(model, ZoneInfo(site.config.site.timezone))


class EchonetHomes:
    """The ECHONET nodes of a :class:`~simulators.site.SimulatedSite` (one per home address)."""

    def __init__(self, site, slow_delay_s: float = 3.0) -> None:
        self.site = site
        self.nodes: dict[str, EmulatedNode] = {}
        self.objects: dict[str, EmulatedObject] = {}  # by device id
        for host, devs in echonet_homes(site.config).items():
            objs = []
            for d in devs:
                load_object(d.register_map)  # a bad object name fails here, naming it
                o = build_object(site.models[d.id], site)
                self.objects[d.id] = o
                objs.append(o)
            port = devs[0].connection.port
            self.nodes[host] = EmulatedNode(host, objs, port, slow_delay_s=slow_delay_s)

    async def start(self, sockets: dict[str, socket.socket] | None = None) -> None:
        """Bind every node (on its pre-bound socket from ``sockets`` by host, if given)."""
        for host, node in self.nodes.items():
            await node.start((sockets or {}).get(host))

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()

    def node_of(self, device_id: str) -> EmulatedNode:
        return self.nodes[self.site.config.device(device_id).connection.host]

    def endpoints(self) -> dict[str, tuple[str, int, str]]:
        """``device id -> (host, port, EOJ as hex)`` of every served object."""
        return {i: (self.node_of(i).host, self.node_of(i).port, f"{o.eoj:06X}") for i, o in self.objects.items()}

    def inject(self, device_id: str, fault: str | None):
        """The Modbus site's fault names on an ECHONET object: ``offline`` and ``slow`` hit the
        home's node, ``frozen`` freezes the object's values, ``exception`` makes it answer
        Get_SNA to everything; None clears all. Returns a completed future (applies at once)."""
        import asyncio

        node, obj = self.node_of(device_id), self.objects[device_id]
        node.set_fault(fault if fault in ("offline", "slow") else None)
        obj.frozen = fault == "frozen"
        obj.sna = set(obj.obj.properties) if fault == "exception" else set(obj.obj.quirks.get_sna)
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def step(self) -> None:
        """Per physics step: the makers' silent mode reverts on simulated time."""
        for o in self.objects.values():
            after = o.obj.quirks.mode_reverts_after_s
            state = getattr(o, "state", None)
            if after is None or state is None or state["at"] is None:
                continue
            if state["mode"] in ("charge", "discharge") and \
                    (self.site.clock.now() - state["at"]).total_seconds() >= after:
                o.revert_mode()
