"""ECHONET Lite polling benchmark: our driver vs pychonet, 721 emulated homes, same run.

A child process serves an ECHONET town of 721 homes (storage battery, home PV, smart meter,
and V2H for a share of them), one emulated node per home on its own loopback address
(random free ``127.a.b.c`` block, port 3610), physics stepped once. In the parent:

* ours       :class:`drivers.fleet.DriverFleet` polls every device of every home
             (``poll_once``: nodes in parallel, one requester per node, each object's poll
             EPCs in one Get, property maps and slow EPCs every 10th poll), ``--cycles`` times;
             ``poll_cycle_s`` is the mean wall time of a full poll of all 721 homes;
* pychonet   the same objects and EPCs with pychonet's ``update([...])`` (one Get per object),
             every home concurrently (``asyncio.gather``), sequential within a home, as its
             Home Assistant integration polls; instances registered up front (no discovery).

``gets_per_s`` = Get requests answered per wall second (ours counts the map and slow Gets of
its full polls too); ``ratio_vs_pychonet`` = ours ÷ pychonet's.

Usage: ``.venv/bin/python bench/echonet.py [--json] [--homes N] [--cycles C]``; ``--json``
ends stdout with one JSON line (logs on stderr).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/ocpp.py would shadow the ocpp library
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

log = logging.getLogger("bench.echonet")


def _town(homes: int):
    from simulators.echonet_site import echonet_homes
    from simulators.town import generate_town
    from vpp.config import parse_config

    data = generate_town(homes, protocol="echonet_lite", v2h_share=0.1)
    data["devices"] = [d for d in data["devices"] if d.get("protocol") == "echonet_lite"]
    data["pv_arrays"] = [a for a in data["pv_arrays"] if not a["id"].startswith("centre")]
    cfg = parse_config(data, "<bench town>")
    return cfg, list(echonet_homes(cfg))


def _serve(cfg, socks, ready, stop) -> None:
    from simulators.clock import SimClock
    from simulators.site import SimulatedSite

    logging.getLogger("pvlib").setLevel(logging.ERROR)

    async def main() -> None:
        site = SimulatedSite(cfg, SimClock(speed=0), auto_ev_sessions=False)
        site.echonet_sockets = {s.getsockname()[0]: s for s in socks}
        async with site:
            site.step(60)
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.2)

    asyncio.run(main())


async def ours(cfg, cycles: int) -> dict:
    from drivers.fleet import DriverFleet

    fleet = DriverFleet(cfg)
    try:
        await fleet.poll_once()  # warm-up: property maps and slow EPCs of every object
        nodes = list(fleet.echonet._nodes.values())
        req0 = sum(n.stats["requests"] for n in nodes)
        times = []
        t_all = time.perf_counter()
        for _ in range(cycles):
            t = time.perf_counter()
            snaps = await fleet.poll_once()
            times.append(time.perf_counter() - t)
        wall = time.perf_counter() - t_all
        gets = sum(n.stats["requests"] for n in nodes) - req0
        good = sum(1 for s in snaps.values() if s is not None and s.quality.value == "good")
        return {"poll_cycle_s": statistics.mean(times), "poll_cycle_max_s": max(times),
                "gets_per_s": gets / wall, "devices_good": good, "devices": len(snaps),
                "timeouts": sum(n.stats["timeouts"] for n in nodes)}
    finally:
        await fleet.stop()


async def pychonet_run(cfg, cycles: int) -> dict:
    from pychonet import ECHONETAPIClient
    from pychonet.EchonetInstance import EchonetInstance
    from pychonet.lib.udpserver import UDPServer

    from drivers.echonet.objects import load_object

    udp = UDPServer(local_ip="127.0.0.1")
    udp.run("127.0.0.1", 0, loop=asyncio.get_running_loop())
    api = ECHONETAPIClient(udp)
    api.configure(message_timeout=50, logger=lambda *a: None)
    homes: dict[str, list] = {}
    for d in cfg.devices:
        obj = load_object(d.register_map)
        gc, cc, ci = obj.class_code >> 8, obj.class_code & 0xFF, d.connection.instance
        m = obj.maps()
        api.register_instance(d.connection.host, gc, cc, ci, sorted(m["inf"]), sorted(m["set"]), sorted(m["get"]))
        inst = EchonetInstance(d.connection.host, gc, cc, ci, api)
        homes.setdefault(d.connection.host, []).append((inst, list(obj.poll)))
    gets = failures = 0

    async def home(objs) -> None:
        nonlocal gets, failures
        for inst, epcs in objs:
            try:
                await inst.update(epcs)
                gets += 1
            except Exception:  # noqa: BLE001 - a timeout counts as a failure, not a crash
                failures += 1

    try:
        times = []
        t_all = time.perf_counter()
        for _ in range(cycles):
            t = time.perf_counter()
            await asyncio.gather(*(home(objs) for objs in homes.values()))
            times.append(time.perf_counter() - t)
        wall = time.perf_counter() - t_all
        return {"poll_cycle_s": statistics.mean(times), "gets_per_s": gets / wall, "failures": failures}
    finally:
        udp.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--homes", type=int, default=721)
    ap.add_argument("--cycles", type=int, default=10)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    logging.getLogger("drivers").setLevel(logging.ERROR)
    from simulators.echonet_site import free_echonet_block, with_echonet_hosts

    cfg, nodes = _town(args.homes)
    socks = free_echonet_block(len(nodes))
    cfg = with_echonet_hosts(cfg, [s.getsockname()[0] for s in socks])
    ctx = mp.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_serve, args=(cfg, socks, ready, stop), daemon=True)
    child.start()
    for s in socks:
        s.close()  # the child owns them now
    try:
        if not ready.wait(300):
            raise RuntimeError("emulated town did not start")
        log.info("%d homes (%d devices) served; polling", len(nodes), len(cfg.devices))
        o = asyncio.run(ours(cfg, args.cycles))
        log.info("ours: %s", o)
        p = asyncio.run(pychonet_run(cfg, max(2, args.cycles // 3)))
        log.info("pychonet: %s", p)
    finally:
        stop.set()
        child.join(10)
        if child.is_alive():
            child.terminate()
    result = {"homes": len(nodes), "devices": len(cfg.devices), "ours": o, "pychonet": p}
    summary = {"homes": len(nodes), "poll_cycle_s": round(o["poll_cycle_s"], 3),
               "gets_per_s": round(o["gets_per_s"], 1), "pychonet_gets_per_s": round(p["gets_per_s"], 1),
               "ratio_vs_pychonet": round(o["gets_per_s"] / p["gets_per_s"], 2) if p["gets_per_s"] else None}
    if args.json:
        print(json.dumps(result))
        print(json.dumps(summary))
    else:
        print(json.dumps(result, indent=2))
        print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
