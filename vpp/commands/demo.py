"""``vpp demo``: a simulated site with the controller, the API and the dashboard, one command.

Creates a demo operator key (printed once, with the dashboard URL); Ctrl-C or SIGTERM stops
everything cleanly (exit code 0).
"""
from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vpp.config import SiteConfig, read_config
from vpp.commands.stopping import stop_event

if TYPE_CHECKING:
    from vpp.runtime import Runtime


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="simulated site + control loop + API + dashboard",
                              description="Start simulated devices, the control loop with the embedded "
                                          "store, the API and the ops dashboard; prints an operator key.")
    p.add_argument("--config", required=True, help="site config YAML (devices are simulated on free ports)")
    p.add_argument("--speed", type=float, default=60.0, help="simulated seconds per wall second (default 60)")
    p.add_argument("--port", type=int, default=8080, help="HTTP port on 127.0.0.1 (0: any free port)")
    p.add_argument("--data-dir", default="var/demo", help="store, keys and ledger (default var/demo)")
    p.add_argument("--weather", default="clear-sky", help="clear-sky (default, offline), open-meteo or a CSV")
    p.set_defaults(func=run)


def simulated_runtime(config: SiteConfig, *, speed: float = 60.0, sim_start: datetime | None = None,
                      data_dir: str | Path | None = None, seed: int = 0, **runtime_kw: Any) -> Runtime:
    """A :class:`~vpp.runtime.Runtime` (not started) on a simulated site: the devices of
    ``config`` served by a :class:`~simulators.site.SimulatedSite` on free loopback ports, on a
    :class:`~simulators.clock.SimClock` running ``speed`` simulated seconds per wall second
    from ``sim_start`` (default: :func:`vpp.runtime.resume_at`, now or where the data dir's
    ledger ends). The runtime starts the site first and stops it last; ``rt.site`` is it."""
    from simulators.clock import SimClock
    from simulators.site import SimulatedSite, with_free_ports
    from vpp.runtime import Runtime, resume_at, with_data_dir

    if speed <= 0:
        raise ValueError("speed must be > 0")
    if data_dir is not None:
        config = with_data_dir(config, data_dir)
    config = with_free_ports(config)
    from simulators.echonet_site import on_free_block

    config, echonet_sockets = on_free_block(config)  # ECHONET homes: a free 127.a.b.c block
    clock = SimClock(resume_at(config, sim_start), speed=speed)
    site = SimulatedSite(config, clock, seed=seed)
    site.echonet_sockets = echonet_sockets
    if runtime_kw.get("serve_http", True):
        from vpp.api.app import create_app
        runtime_kw.setdefault("app_factory", create_app)
    return Runtime(config, clock=clock, time_scale=speed, site=site, **runtime_kw)


def run(args: argparse.Namespace) -> int:
    from vpp.api.auth import create_key

    config = read_config(args.config)
    if args.speed <= 0:
        print("error: --speed must be > 0", file=sys.stderr)
        return 2
    rt = simulated_runtime(config, speed=args.speed, data_dir=args.data_dir, weather=args.weather, port=args.port)
    key, _ = create_key(rt.config.api.keys_path, "operator", f"demo-operator-{secrets.token_hex(3)}")

    async def main() -> None:
        stop = stop_event()
        await rt.start()
        try:
            print(f"dashboard: {rt.url}", flush=True)
            print(f"operator key: {key}", flush=True)
            print(f"data: {Path(args.data_dir).resolve()}  (simulation ×{args.speed:g}; Ctrl-C stops)", flush=True)
            await stop.wait()
        finally:
            print("stopping…", flush=True)
            await rt.stop()

    try:
        asyncio.run(main())
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("stopped", flush=True)
    return 0
