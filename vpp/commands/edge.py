"""``vpp edge run``: the edge agent of one town, connected to the centre over the bus.

With ``--config town.yaml`` the town is a full site (the same Runtime and controller as
``vpp run``; ``--simulate`` serves its devices from a simulated site); with ``--homes N`` it is
a lightweight in-process town of N homes (:mod:`vpp.edge.home_physics`, for benchmarks).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from vpp.config import read_config
from vpp.commands.stopping import stop_event

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("edge", help="edge agent of one town (NATS bus to the centre)")
    sub = p.add_subparsers(dest="edge_command", metavar="ACTION")
    r = sub.add_parser("run", help="run the town's agent until Ctrl-C",
                       description="Run the town's controller locally and exchange telemetry, status, acks "
                                   "and leased commands with the centre over NATS JetStream.")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="the town's site config YAML")
    src.add_argument("--homes", type=int, help="simulate this many homes in-process instead of a site")
    r.add_argument("--town", help="town id (default: the config's site name)")
    r.add_argument("--bus", default="nats://127.0.0.1:4222", help="NATS URL (default nats://127.0.0.1:4222)")
    r.add_argument("--state-dir", default="var/edge", help="outbox, inbox and held commands (default var/edge)")
    r.add_argument("--simulate", action="store_true", help="with --config: serve the devices from a simulated site")
    r.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second (simulations)")
    r.add_argument("--step-s", type=float, default=60.0, help="with --homes: simulated seconds per physics step")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--weather", default="clear-sky", help="with --config: clear-sky, open-meteo or a CSV")
    r.add_argument("--http", action="store_true",
                   help="with --config: also serve the town's API and dashboard on api.host:api.port "
                        "(its own dispatch book then runs under the centre's commands)")
    r.add_argument("--duration", type=float, default=None, help="stop after this many wall seconds")
    r.set_defaults(func=run)


def _town_id(name: str) -> str:
    import re
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[:64]


async def _homes(args: argparse.Namespace, stop: asyncio.Event) -> None:
    from vpp.edge.agent import EdgeAgent
    from vpp.edge.home_physics import HomesTown, ManualClock

    if args.homes <= 0 or not args.town:
        raise SystemExit("error: --homes needs a positive count and --town")
    clock = ManualClock(datetime.now(timezone.utc))
    town = HomesTown(args.town, args.homes, clock, seed=args.seed)
    async with EdgeAgent(town, args.bus, Path(args.state_dir)):
        tick = max(args.step_s / max(args.speed, 1e-9), 0.01)
        next_t = time.monotonic()
        while not stop.is_set():
            town.step(args.step_s)
            clock.advance(args.step_s)
            next_t += tick
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), max(next_t - time.monotonic(), 0.0))


async def _site(args: argparse.Namespace, stop: asyncio.Event) -> None:
    from vpp.edge.agent import EdgeAgent
    from vpp.edge.port import RuntimePort
    from vpp.runtime import Runtime

    config = read_config(args.config)
    town = _town_id(args.town or config.site.name)
    http: dict = {"serve_http": False}
    if args.http:
        from vpp.api.app import create_app
        http = {"serve_http": True, "app_factory": create_app, "host": config.api.host, "port": config.api.port}
    if args.simulate:
        from vpp.commands.demo import simulated_runtime
        rt = simulated_runtime(config, speed=args.speed, data_dir=Path(args.state_dir) / "site",
                               weather=args.weather, **http)
    else:
        rt = Runtime(config, weather=args.weather, **http)
    async with rt:
        async with EdgeAgent(RuntimePort(rt, town), args.bus, Path(args.state_dir),
                             link_alarm_s=60.0):
            log.info("edge agent of %s running (bus %s)", town, args.bus)
            await stop.wait()


def run(args: argparse.Namespace) -> int:
    async def main() -> None:
        stop = stop_event(args.duration)
        await (_homes(args, stop) if args.homes is not None else _site(args, stop))

    asyncio.run(main())
    return 0
