"""``vpp central run``: the centre's bus side — every town's telemetry into the store per
town, status and acks into the centre's ledger, a plan round for all towns every
``--plan-every-s`` (leased plans, acks tracked)."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from pathlib import Path
from vpp.commands.stopping import stop_event

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("central", help="central service across towns (NATS bus)")
    sub = p.add_subparsers(dest="central_command", metavar="ACTION")
    r = sub.add_parser("run", help="run the centre's bus side until Ctrl-C")
    r.add_argument("--bus", default="nats://127.0.0.1:4222", help="NATS URL (default nats://127.0.0.1:4222)")
    r.add_argument("--state-dir", default="var/central", help="ledger and per-town telemetry (default var/central)")
    r.add_argument("--plan-every-s", type=float, default=900.0, help="wall seconds between plan rounds (0: never)")
    r.add_argument("--lease-s", type=float, default=900.0, help="lease of each command [s]")
    r.add_argument("--plan-with", default=None, metavar="MODULE:FUNCTION",
                   help="the plan_towns(requests) -> plans callable (default: serial planning in this process)")
    r.add_argument("--towns-dir", default=None, metavar="DIR",
                   help="the towns' site configs (*.yaml, `vpp town generate --towns N --out DIR`): plan them on "
                        "the Dask cluster at $VPP_SCHEDULER_ADDRESS (else a local 2-worker cluster)")
    r.add_argument("--http-port", type=int, default=None,
                   help="serve the centre's API (/api/v1/towns…) on --http-host:PORT (default: no API)")
    r.add_argument("--http-host", default="127.0.0.1", help="API bind address (default 127.0.0.1)")
    r.add_argument("--keys", default="var/central/api_keys.json", help="API keys file (`vpp keys`)")
    r.add_argument("--duration", type=float, default=None, help="stop after this many wall seconds")
    r.set_defaults(func=run)
    k = sub.add_parser("sink", help="store every town's telemetry from the bus (its own process)")
    k.add_argument("--bus", default="nats://127.0.0.1:4222", help="NATS URL (default nats://127.0.0.1:4222)")
    k.add_argument("--state-dir", default="var/central", help="per-town telemetry stores (default var/central)")
    k.add_argument("--influx-url", default=None,
                   help="store into this InfluxDB 1.x/2.x (v1 API; the town is the site tag) instead of "
                        "per-town SQLite files; token from $VPP_INFLUX_TOKEN")
    k.add_argument("--influx-db", default="vpp", help="InfluxDB database (default vpp)")
    k.add_argument("--towns", default=None, help="comma-separated town ids this sink stores (default: all; "
                                                 "several sinks share the towns between them)")
    k.add_argument("--duration", type=float, default=None, help="stop after this many wall seconds")
    k.set_defaults(func=sink)
    r.add_argument("--no-sink", dest="sink", action="store_false",
                   help="do not store telemetry here (a `vpp central sink` process does)")
    y = sub.add_parser("key", help="create a key of the centre's API (printed once)")
    y.add_argument("--keys", default="var/central/api_keys.json", help="API keys file")
    y.add_argument("--role", required=True, choices=("operator", "aggregator", "viewer"))
    y.add_argument("--name", required=True, help="who or what uses the key")
    y.add_argument("--expires-days", type=float, default=None, help="the key is refused after this many days")
    y.set_defaults(func=key)
    s = sub.add_parser("status", help="print the centre's view of the towns (JSON)")
    s.add_argument("--state-dir", default="var/central")
    s.set_defaults(func=status)


async def _serve_api(central, args: argparse.Namespace):
    """uvicorn with the centre's API (:mod:`vpp.api.central_app`) in this event loop."""
    import uvicorn

    from vpp.api.central_app import create_central_app
    from vpp.http_socket import bind_socket

    app = create_central_app(central, args.keys)
    sock = bind_socket(args.http_host, args.http_port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    server.task = asyncio.create_task(server.serve(sockets=[sock]))
    log.info("central API on http://%s:%d/api/v1/towns", args.http_host, sock.getsockname()[1])
    return server


def load_callable(spec: str):
    """``module:function`` → the function (:class:`SystemExit` naming what is missing)."""
    import importlib

    mod, _, name = spec.partition(":")
    if not mod or not name:
        raise SystemExit(f"error: --plan-with: expected MODULE:FUNCTION, got {spec!r}")
    try:
        fn = getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as e:
        raise SystemExit(f"error: --plan-with {spec}: {e}") from None
    if not callable(fn):
        raise SystemExit(f"error: --plan-with {spec}: not callable")
    return fn


def planner(args: argparse.Namespace):
    """The plan_towns callable: ``--plan-with``, else the distributed planner over
    ``--towns-dir``'s configs (town id = the config's ``site.name``), else serial planning."""
    from vpp.central.planning import serial_plan_towns

    if args.plan_with:
        return load_callable(args.plan_with)
    if getattr(args, "towns_dir", None):
        from vpp.central.distributed import DistributedPlanTowns
        from vpp.config import ConfigError, read_config

        files = sorted(Path(args.towns_dir).glob("*.yaml"))
        if not files:
            raise SystemExit(f"error: --towns-dir {args.towns_dir}: no *.yaml town configs")
        try:
            configs = [read_config(f) for f in files]
        except ConfigError as e:
            raise SystemExit(f"error: --towns-dir: {e}") from None
        return DistributedPlanTowns({c.site.name: c for c in configs})
    return serial_plan_towns


def run(args: argparse.Namespace) -> int:
    from vpp.central.service import CentralService

    plan_towns = planner(args)

    async def main() -> None:
        stop = stop_event(args.duration)
        async with CentralService(args.bus, Path(args.state_dir), lease_s=args.lease_s,
                                  plan_towns=plan_towns, sink=args.sink) as central:
            log.info("central running (bus %s)", args.bus)
            server = None
            if args.http_port is not None:
                server = await _serve_api(central, args)
            while not stop.is_set():
                wait = args.plan_every_s if args.plan_every_s > 0 else None
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                if not stop.is_set() and wait:
                    issued = await central.plan_round_async()
                    log.info("plan round: %d towns", len(issued))
            if server is not None:
                server.should_exit = True
                await server.task

    asyncio.run(main())
    return 0


def sink(args: argparse.Namespace) -> int:
    from vpp.bus.client import Bus
    from vpp.central.service import telemetry_sink

    async def main() -> None:
        stop = stop_event(args.duration)
        bus = await Bus(args.bus, "central-sink").connect()
        store_for = None
        if args.influx_url:
            import os

            from vpp.bus.telemetry import influx_store_per_town
            from vpp.config import InfluxStorage
            store_for = influx_store_per_town(InfluxStorage(backend="influxdb", url=args.influx_url,
                                                            database=args.influx_db,
                                                            token=os.environ.get("VPP_INFLUX_TOKEN")))
        snk = telemetry_sink(bus, Path(args.state_dir), store_for)
        towns = [t.strip() for t in args.towns.split(",") if t.strip()] if args.towns else None
        task = asyncio.create_task(snk.run(stop, towns))
        await stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await bus.close()
        snk.close()

    asyncio.run(main())
    return 0


def key(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from vpp.api.auth import create_key

    try:
        plain, _ = create_key(args.keys, args.role, args.name,
                              timedelta(days=args.expires_days) if args.expires_days else None)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(plain)
    return 0


def status(args: argparse.Namespace) -> int:
    from vpp.central.state import CentralState

    path = Path(args.state_dir) / "central.sqlite"
    if not path.exists():
        print(f"error: no central state at {path}", file=sys.stderr)
        return 2
    st = CentralState(path)
    try:
        print(json.dumps({"towns": st.towns(), "commands": st.ack_counts(), "awards": st.awards()}, indent=1))
    finally:
        st.close()
    return 0
