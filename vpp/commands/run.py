"""``vpp run``: poll the configured devices, store telemetry and run the control loop."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from vpp.commands.plan import weather_provider
from vpp.config import SiteConfig, read_config

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run the control loop against the configured devices",
                              description="Poll devices, store telemetry, forecast, plan and dispatch "
                                          "battery setpoints (leases) until Ctrl-C.")
    p.add_argument("--config", required=True, help="site config YAML")
    p.add_argument("--weather", default="open-meteo",
                   help="open-meteo (default), clear-sky, or a CSV file of weather")
    p.add_argument("--duration", type=float, default=None,
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.set_defaults(func=run)


async def serve(config: SiteConfig, weather: str = "open-meteo", duration: float | None = None,
                stop: asyncio.Event | None = None,
                first_run_s: tuple[float, float, float] = (0.0, 5.0, 10.0)):
    """Start storage, pollers and the scheduler; run until ``stop`` is set or ``duration`` [s].
    Returns the :class:`~vpp.control.loop.Controller` (its plan, leases and alarms)."""
    from drivers.fleet import DriverFleet
    from vpp.control.loop import Controller
    from vpp.control.scheduler import build_scheduler
    from vpp.storage import TelemetryPipeline, open_store

    stop = stop or asyncio.Event()
    store = open_store(config.storage, site=config.site.name, connect=False)
    pipeline = TelemetryPipeline(store, config.storage)
    await pipeline.start()
    fleet = DriverFleet(config)
    sched = ctl = None
    try:
        await fleet.start(on_snapshot=pipeline.submit)
        ctl = Controller(config, fleet=fleet, store=store, weather=weather_provider(weather, config))
        sched = build_scheduler(ctl, first_run_s=first_run_s)
        sched.start()
        log.info("control loop running for %s (%d devices)", config.site.name, len(config.devices))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=duration)
    finally:
        if sched is not None:
            sched.shutdown(wait=False)
        for b in config.devices_of("battery"):
            # leases revert on their own; an explicit idle just makes the stop immediate
            with contextlib.suppress(Exception):
                await fleet.device(b.id).set_power(0.0, revert_s=config.optimiser.lease_s)
        await fleet.stop()
        await pipeline.stop()
        store.close()
    return ctl


def run(args: argparse.Namespace) -> int:
    config = read_config(args.config)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await serve(config, args.weather, args.duration, stop)

    asyncio.run(main())
    return 0
