"""``vpp run``: poll the configured devices, store telemetry, run the control loop and serve
the API and dashboard on ``config.api.host:config.api.port`` (``--no-http``: controller only)."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from vpp.config import SiteConfig, read_config
from vpp.commands.stopping import stop_event

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run the control loop against the configured devices",
                              description="Poll devices, store telemetry, forecast, plan and dispatch "
                                          "battery setpoints (leases), and serve the API and dashboard "
                                          "on api.host:api.port, until Ctrl-C.")
    p.add_argument("--config", required=True, help="site config YAML")
    p.add_argument("--weather", default="open-meteo",
                   help="open-meteo (default), clear-sky, or a CSV file of weather")
    p.add_argument("--duration", type=float, default=None,
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--no-http", dest="http", action="store_false",
                   help="do not serve the API and dashboard")
    p.set_defaults(func=run)


async def serve(config: SiteConfig, weather: str = "open-meteo", duration: float | None = None,
                stop: asyncio.Event | None = None,
                first_run_s: tuple[float, float, float] = (0.0, 5.0, 10.0), http: bool = False):
    """Run a :class:`vpp.runtime.Runtime` on the configured devices until ``stop`` is set or
    ``duration`` [s]; with ``http`` it also serves the API and dashboard on
    ``config.api.host:config.api.port``. Returns the :class:`~vpp.control.loop.Controller`
    (its plan, leases and alarms)."""
    from vpp.runtime import Runtime

    stop = stop or asyncio.Event()
    from vpp.api.app import create_app

    rt = Runtime(config, weather=weather, host=config.api.host, port=config.api.port,
                 first_run_s=first_run_s, serve_http=http, app_factory=create_app if http else None)
    async with rt:
        log.info("control loop running for %s (%d devices)%s", config.site.name, len(config.devices),
                 f"; API and dashboard on {rt.url}" if http else "")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=duration)
    return rt.controller


def run(args: argparse.Namespace) -> int:
    config = read_config(args.config)

    async def main() -> None:
        stop = stop_event()
        await serve(config, args.weather, args.duration, stop, http=args.http)

    asyncio.run(main())
    return 0
