"""V2H discharge on the emulated 0x027E unit over loopback UDP: a discharge setpoint read back
over ECHONET feeds the home (grid import down by that power, vehicle SoC down by the energy),
bounded by the car's SoC floor and the unit's rating; in an outage the controller's island
rules pause it like any EV charger (the car never becomes an unmanaged source)."""
from __future__ import annotations

import pytest

from drivers.device import SetpointError
from drivers.fleet import DriverFleet
from simulators import physics
from vpp.control.island import island_ev_commands
from vpp.control.ev import EvCommand


async def full_read(dev):
    """Poll until the next full poll (the slow properties too) and return its snapshot."""
    while dev.polls % dev.obj.slow_every:
        await dev.read()
    return await dev.read()


@pytest.fixture
async def home(town):
    ids = ("h001-ev", "h001-meter")
    cfg = town.config.model_copy(update={"devices": [town.config.device(i) for i in ids]})
    town.model("h001-ev").plug(need_wh=10_000.0)  # arrives at 65 % of 40 kWh
    f = DriverFleet(cfg)
    await f.poll_once()
    await f.device("h001-ev").set_current_limit(0.0)  # standby: neither charging nor feeding
    town.step(0)
    yield f
    await f.stop()


async def test_discharge_setpoint_moves_grid_import_down_and_the_car_soc(town, home):
    ev, meter, car = home.device("h001-ev"), home.device("h001-meter"), town.model("h001-ev")
    before = (await meter.read()).values["power_w"]
    soc0 = car.session.soc
    await ev.set_discharge_power(3000.0)
    assert ev.decoded["operation_mode"] == "discharge" and ev.decoded["discharge_power_w"] == 3000
    town.step(0)  # same instant: load, PV and battery unchanged, only the car moved
    s = await ev.read()
    assert s.values["power_w"] == pytest.approx(-3000.0, abs=1)  # D3 − = feeding the home
    assert (await meter.read()).values["power_w"] == pytest.approx(before - 3000.0, abs=1)
    town.step(3600)
    assert car.session.soc == pytest.approx(soc0 - 3000.0 / car.session.capacity_wh, abs=1e-6)
    s = await full_read(ev)
    assert s.values["vehicle_soc"] == pytest.approx(car.session.soc, abs=0.005)
    assert ev.decoded["discharged_kwh_milli"] == pytest.approx(3000.0, abs=1)


async def test_discharge_stops_at_the_vehicle_soc_floor_and_the_rating(town, home):
    ev, car = home.device("h001-ev"), town.model("h001-ev")
    with pytest.raises(SetpointError, match="V2H discharge"):
        await ev.set_discharge_power(car.car_max_w + 1)  # above the unit's rating: refused before any frame
    await ev.set_discharge_power(car.car_max_w)
    town.step(12 * 3600)
    assert car.session.soc == pytest.approx(car.soc_floor, abs=1e-9)
    assert car.power_w == 0.0
    s = await full_read(ev)
    assert s.values["power_w"] == 0.0 and s.values["vehicle_soc"] == pytest.approx(car.soc_floor)
    assert ev.decoded["vehicle_dischargeable_pct"] == 0
    # the pure bound: setpoint, rating and the energy above the floor in this step
    p = physics.ev_discharge_power([5000.0, 9000.0, 5000.0], 6000.0, [0.8, 0.8, 0.30001], 0.3, 40_000.0, 60.0)
    assert p.tolist() == pytest.approx([5000.0, 6000.0, 0.00001 * 40_000.0 * 60.0])


async def test_outage_island_rules_pause_the_v2h_unit(town, home):
    ev, car = home.device("h001-ev"), town.model("h001-ev")
    await ev.set_discharge_power(3000.0)
    town.step(60)
    assert car.power_w == pytest.approx(-3000.0)
    town.grid_outage = True
    cmds = island_ev_commands(town.config, [town.config.device("h001-ev")],
                              {"h001-ev": EvCommand("h001-ev", 0.0, -3000.0, "plan")})
    assert cmds["h001-ev"].amps == 0.0 and cmds["h001-ev"].source == "outage"
    await ev.set_current_limit(cmds["h001-ev"].amps)  # what the loop writes for a paused charger
    soc = car.session.soc
    town.step(600)
    assert ev.decoded["operation_mode"] == "standby"
    assert car.power_w == 0.0 and car.session.soc == soc
