"""A central system on a free loopback port and simulated stations that connect to it."""
from __future__ import annotations

import pytest

from simulators.ocpp_station import Car, Quirks, SimStation, StationModel
from tests.testkit.sites import make_site
from tests.testkit.wait import wait_until
from vpp.csms.server import CentralSystem

PASSWORDS = {"cp16": "pw-cp16", "cp201": "pw-cp201"}


class RecordingAlarms:
    """Alarm sink that keeps what is active (key -> reason)."""

    def __init__(self) -> None:
        self.active: dict[str, str] = {}
        self.raised: list[tuple[str, str]] = []

    def raise_(self, key: str, reason: str) -> None:
        self.active[key] = reason
        self.raised.append((key, reason))

    def clear(self, key: str, reason: str) -> None:
        self.active.pop(key, None)


class Park:
    """A started central system plus the stations a test connects."""

    def __init__(self, cs: CentralSystem, alarms: RecordingAlarms) -> None:
        self.cs, self.alarms, self.sims = cs, alarms, []

    async def station(self, sid: str, quirks: Quirks | None = None, car: Car | None = None,
                      start_tx: bool = True, **kw) -> SimStation:
        dev = self.cs.devices[sid]
        r = dev.ratings
        model = StationModel(voltage_v=r.voltage_v, phases=r.phases, max_current_a=r.max_current_a,
                             min_current_a=r.min_current_a or 6.0)
        s = SimStation(sid, dev.version, self.cs.url, password=PASSWORDS.get(sid, "pw"), model=model,
                       quirks=quirks, meter_interval_s=kw.pop("meter_interval_s", 0.1), speed=60.0, **kw)
        self.sims.append(s)
        await s.connect()
        # the central system installs the safe default profile after the boot
        await wait_until(lambda: s.model.default_limit_a is not None or s.quirks.external_control_disabled, 5)
        if car is not None:
            await s.plug(car, start=start_tx)
            if start_tx:
                await wait_until(lambda: self.cs.stations[sid].transaction_id == s.model.tx_id, 5)
        return s


@pytest.fixture
async def park():
    alarms = RecordingAlarms()
    cs = CentralSystem(make_site("ocpp-car-park"), alarm_sink=alarms)
    await cs.start()
    p = Park(cs, alarms)
    yield p
    for s in p.sims:
        await s.close()
    await cs.stop()
