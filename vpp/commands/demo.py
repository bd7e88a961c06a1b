"""``vpp demo``: a simulated site with the controller, the API and the dashboard, one command.

Creates a demo operator key (printed once, with the dashboard URL); Ctrl-C or SIGTERM stops
everything cleanly (exit code 0).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
import sys
from pathlib import Path

from vpp.config import read_config


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


def run(args: argparse.Namespace) -> int:
    from vpp.api.auth import create_key
    from vpp.runtime import Runtime

    config = read_config(args.config)
    if args.speed <= 0:
        print("error: --speed must be > 0", file=sys.stderr)
        return 2
    rt = Runtime(config, simulate=True, speed=args.speed, data_dir=args.data_dir, weather=args.weather,
                 port=args.port)
    key, _ = create_key(rt.config.api.keys_path, "operator", f"demo-operator-{secrets.token_hex(3)}")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
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
