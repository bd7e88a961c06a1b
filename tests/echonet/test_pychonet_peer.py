"""pychonet (the library behind Home Assistant's ECHONET Lite integration) as an independent
peer of our emulated homes: it discovers the node, reads and sets the storage battery, and
its values equal our driver's and the physics state. A real peer test: never skipped."""
from __future__ import annotations

import asyncio

import pytest
from pychonet import ECHONETAPIClient
from pychonet.lib.udpserver import UDPServer
from pychonet.StorageBattery import StorageBattery

from drivers.fleet import DriverFleet
from tests.echonet.conftest import echonet_site
from tests.echonet.test_driver import echonet_only


@pytest.fixture
async def peer():
    udp = UDPServer(local_ip="127.0.0.1")
    udp.run("127.0.0.1", 0, loop=asyncio.get_running_loop())
    api = ECHONETAPIClient(udp)
    api.configure(message_timeout=30, logger=lambda *a: None)  # 3 s per request
    yield api
    udp.close()


async def test_pychonet_discovers_reads_and_sets_our_battery(peer):
    site = echonet_site(1)
    async with site:
        site.step(60)
        dev = site.config.device("h001-bat")
        host = dev.connection.host
        assert await peer.discover(host)
        instances = peer.state[host]["instances"]
        assert {(0x02, 0x7D), (0x02, 0x79), (0x02, 0x88)} <= {(g, c) for g in instances for c in instances[g]}
        assert await peer.getAllPropertyMaps(host, 0x02, 0x7D, 0x01)
        assert {0xE4, 0xD3, 0xDA, 0xCF} <= set(peer.state[host]["instances"][0x02][0x7D][0x01][0x9F])
        bat = StorageBattery(host, peer, 1)
        fleet = DriverFleet(echonet_only(site.config))
        try:
            site.model("h001-bat").apply_write({"setpoint_w": -1800.0, "setpoint_enabled": 1.0})
            site.step(60)
            ours = (await fleet.poll_once())["h001-bat"]
            theirs = await bat.update([0xE4, 0xD3, 0xDA, 0xCF])
            model = site.model("h001-bat")
            assert theirs[0xE4] == round(model.soc * 100) == round(ours.values["soc"] * 100)
            assert theirs[0xD3] == round(-model.power_w) == -ours.values["power_w"] == 1800  # + charging
            assert theirs[0xDA] == "standby" and theirs[0xCF] == "charging"

            # pychonet commands: discharge 1200 W, then charge at 900 W
            assert await bat.setMessage(0xEC, 1200, 4) and await bat.setMessage(0xDA, 0x43, 1)
            site.step(30)
            assert model.power_w == pytest.approx(1200.0)
            theirs = await bat.update([0xD3, 0xDA, 0xCF, 0xEC])
            snap = await fleet.device("h001-bat").read()
            assert theirs[0xDA] == "discharging" and theirs[0xEC] == 1200
            assert theirs[0xD3] == -1200 and snap.values["power_w"] == 1200 and snap.values["setpoint_w"] == 1200
            assert await bat.setMessage(0xEB, 900, 4) and await bat.setMessage(0xDA, 0x42, 1)
            site.step(30)
            assert model.power_w == pytest.approx(-900.0)
            snap = await fleet.device("h001-bat").read()
            assert (await bat.update(0xD3)) == 900 and snap.values["setpoint_w"] == -900.0

            # and what our driver sets, pychonet reads
            await fleet.device("h001-bat").set_power(-500.0)
            site.step(30)
            assert await bat.update([0xDA, 0xEB, 0xD3]) == {0xDA: "charging", 0xEB: 500, 0xD3: 500}
        finally:
            await fleet.stop()
