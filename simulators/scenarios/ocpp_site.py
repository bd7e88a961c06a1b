"""Scenarios with OCPP chargers: the central system and the simulated stations on simulated time.

A scenario with ``ocpp_chargers: true`` turns its site's EV chargers into OCPP charge points
(alternately 1.6J and 2.0.1). The runner then starts a real
:class:`vpp.csms.server.CentralSystem` on a free loopback port on the scenario's clock, the
site's :class:`~simulators.ocpp_fleet.OcppStations` connect to it over WebSockets, and the
controller reaches them through the same fleet as the Modbus devices. The stations' cars are
stepped with the site's physics; after every step each station sends its MeterValues
(:meth:`OcppScenario.flush`), so the central system sees each step's energy before the
controller's next step reads it.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from simulators.ocpp_station import Car, SimStation

#: Battery of a scenario's car [Wh] and its state of charge on arrival [fraction].
CAR_CAPACITY_WH = 60_000.0
CAR_ARRIVAL_SOC = 0.2


def ocpp_chargers(data: dict[str, Any]) -> dict[str, Any]:
    """Site config data with every EV charger made an OCPP station (1.6 / 2.0.1 in turn)."""
    out = dict(data)
    devices, k = [], 0
    for d in data.get("devices", []):
        if d.get("kind") == "ev_charger":
            k += 1
            d = {key: v for key, v in d.items() if key not in ("register_map", "connection")}
            d.update(protocol="ocpp", version="1.6" if k % 2 else "2.0.1", ocpp={"password": f"sim-{d['id']}"})
        devices.append(d)
    out["devices"] = devices
    out["ocpp"] = {**data.get("ocpp", {}), "port": 0, "security_profile": 1}
    return out


@dataclass
class OcppSession:
    """A car's stay for the KPIs: what it needed [Wh] and what its station delivered [Wh]."""

    station: SimStation
    need_wh: float
    start_wh: float
    end_wh: float | None = None

    @property
    def delivered_wh(self) -> float:
        end = self.end_wh if self.end_wh is not None else self.station.model.energy_wh
        return end - self.start_wh


class _Alarms:
    def __init__(self, alarms: Any, now: Any) -> None:
        self.alarms, self.now = alarms, now

    def raise_(self, key: str, reason: str) -> None:
        self.alarms.raise_(key, reason, self.now())

    def clear(self, key: str, reason: str) -> None:
        self.alarms.clear(key, self.now(), reason)


class OcppScenario:
    """Central system + stations of one scenario run (see the module docstring)."""

    def __init__(self, config: Any, site: Any, clock: Any) -> None:
        self.config, self.site, self.clock = config, site, clock
        self.csms = None

    def __bool__(self) -> bool:
        return len(self.site.ocpp) > 0

    async def start(self, modbus_fleet: Any) -> Any:
        """Start the central system, connect the stations; the fleet the controller uses."""
        from vpp.csms.fleet import CompositeFleet
        from vpp.csms.server import CentralSystem

        self.csms = CentralSystem(self.config, now=self.clock.now, port=0)
        await self.csms.start()
        self.site.ocpp.auto_sessions = False
        self.site.ocpp.meter_interval_s = 1e6  # MeterValues are sent per step (flush), not on a wall timer
        self.site.attach_ocpp(self.csms.url)
        stations = self.csms.stations
        for _ in range(1000):
            if all(st.booted and st.safe_limit_a is not None for st in stations.values()):
                break
            await asyncio.sleep(0.02)
        else:
            raise RuntimeError("the simulated OCPP stations did not connect")
        return CompositeFleet(modbus_fleet, self.csms)

    def wire(self, ctl: Any) -> None:
        """The central system's alarms and the stations' charging needs into the controller."""
        self.ctl = ctl
        self.csms.alarm_sink = _Alarms(ctl.alarms, self.clock.now)
        self.csms.needs_sink = lambda sid, needs: ctl.ev_needs.set_from_station(sid, needs, self.clock.now())

    async def flush(self) -> None:
        """Every connected station sends its MeterValues now (after a physics step)."""
        live = [s for s in self.site.ocpp.stations.values() if s.cp is not None and s.ws is not None
                and s.ws.state.name == "OPEN"]
        await asyncio.gather(*(s.send_meter_values() for s in live), return_exceptions=True)

    async def plug(self, charger: str, need_wh: float, departure: datetime) -> OcppSession:
        """A car arrives wanting ``need_wh`` [Wh] by ``departure``: a 2.0.1 station reports it
        (NotifyEVChargingNeeds, as an ISO 15118 car tells it); at a 1.6 station the driver
        enters it through the session's link (the needs store, as the API does)."""
        s = self.site.ocpp.stations[charger]
        soc = CAR_ARRIVAL_SOC
        await s.plug(Car(capacity_wh=CAR_CAPACITY_WH, soc=soc, target_soc=min(soc + need_wh / CAR_CAPACITY_WH, 1.0)))
        if s.v16:
            self.ctl.ev_needs.set(charger, self.clock.now(), "driver", energy_wh=need_wh, departure=departure)
        else:
            await s.notify_needs(need_wh, departure)
        return OcppSession(s, need_wh, s.model.energy_wh)

    async def leave(self, session: OcppSession) -> None:
        session.end_wh = session.station.model.energy_wh
        await session.station.unplug()

    def power_w(self) -> float:
        return float(sum(self.site.ocpp.power_w(i) for i in self.site.ocpp.devices))

    async def stop(self) -> None:
        await self.site.ocpp.stop()
        if self.csms is not None:
            await self.csms.stop()

    def at(self) -> datetime:
        return self.clock.now()
