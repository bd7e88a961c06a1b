"""ECHONET test homes: emulated nodes on a random free 127.a.b.0/24-style block, port 3610."""
from __future__ import annotations

import pytest

from simulators.clock import SimClock
from simulators.echonet_site import echonet_homes, free_echonet_block, with_echonet_hosts
from simulators.site import SimulatedSite, with_free_ports
from simulators.town import generate_town
from vpp.config import parse_config


def echonet_site(homes: int = 2, maps: dict[str, str] | None = None, **town) -> SimulatedSite:
    """A manual-clock simulated town of ECHONET homes on free loopback addresses (not started);
    ``maps``: object file per device id (a maker variant, a path)."""
    data = generate_town(homes, protocol="echonet_lite", **town)
    for d in data["devices"]:
        if d["id"] in (maps or {}):
            d["register_map"] = maps[d["id"]]
    cfg = parse_config(data, "<echonet test town>")
    socks = free_echonet_block(len(echonet_homes(cfg)))
    hosts = [s.getsockname()[0] for s in socks]
    cfg = with_free_ports(with_echonet_hosts(cfg, hosts))
    site = SimulatedSite(cfg, SimClock(speed=0), auto_ev_sessions=False)
    site.echonet_sockets = dict(zip(hosts, socks))
    return site


@pytest.fixture
async def town():
    site = echonet_site(2, v2h_share=1.0)
    async with site:
        site.step(60)
        yield site
