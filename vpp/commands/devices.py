"""``vpp devices``: read every configured device once, or send one validated setpoint.

``vpp devices read --config FILE [--json]``
    one decoded snapshot per device (table, or one JSON object per line).
``vpp devices write --config FILE DEVICE (--power-w W | --limit-w W | --current-a A) [--revert-s S]``
    battery power (> 0 discharge), PV active-power limit or EV current limit; refused
    setpoints exit with status 3 and write nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone

from rich.console import Console
from rich.table import Table

from vpp.commands.jsonout import stdout_to_stderr
from vpp.config import read_config


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("devices", help="read devices or send a setpoint over Modbus")
    sub = p.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    r = sub.add_parser("read", help="poll every device once and print the decoded values")
    r.add_argument("--config", required=True, help="site config YAML")
    r.add_argument("--json", action="store_true", help="one JSON object per device and line")
    r.add_argument("--device", action="append", help="only this device id (repeatable)")
    r.set_defaults(func=run_read)
    w = sub.add_parser("write", help="send one validated setpoint")
    w.add_argument("--config", required=True, help="site config YAML")
    w.add_argument("device", help="device id")
    g = w.add_mutually_exclusive_group(required=True)
    g.add_argument("--power-w", type=float, help="battery power [W], > 0 discharge, < 0 charge")
    g.add_argument("--limit-w", type=float, help="PV active-power limit [W]")
    g.add_argument("--current-a", type=float, help="EV charging current limit [A] (0 pauses)")
    w.add_argument("--revert-s", type=float, default=None,
                   help="device falls back after this many s without a new command")
    w.set_defaults(func=run_write)


def _snapshot_dict(s) -> dict:
    return {"device": s.device, "kind": s.kind.value, "ts": s.ts.isoformat(),
            "quality": s.quality.value, "reason": s.reason, "values": s.values}


async def _read(config, only: list[str] | None) -> list:
    from drivers.fleet import DriverFleet
    from drivers.protocols import Quality, Snapshot

    fleet = DriverFleet(config)
    try:
        await fleet.poll_once()
        ids = only or fleet.device_ids
        snaps = []
        for i in ids:
            s = fleet.latest(i)
            if s is None:  # failed, but not yet three times: report it rather than hide it
                s = Snapshot(i, fleet.device(i).kind, datetime.now(timezone.utc), {},
                             Quality.UNAVAILABLE, fleet.device(i).last_error or "no answer")
            snaps.append(s)
        return snaps
    finally:
        await fleet.stop()


def run_read(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    with stdout_to_stderr(args.json):  # --json: stdout carries the JSON lines only
        snaps = asyncio.run(_read(config, args.device))
    if args.json:
        for s in snaps:
            print(json.dumps(_snapshot_dict(s), sort_keys=True))
    else:
        console = Console()
        for s in snaps:
            t = Table(title=f"{s.device} ({s.kind.value}) — {s.quality.value}"
                            + (f": {s.reason}" if s.reason else ""))
            t.add_column("field")
            t.add_column("value", justify="right")
            for k, v in s.values.items():
                t.add_row(k, f"{v:,.3f}".rstrip("0").rstrip("."))
            console.print(t)
    return 0 if all(s.quality.value == "good" for s in snaps) else 1


async def _write(config, args) -> None:
    from drivers.fleet import DriverFleet

    fleet = DriverFleet(config)
    try:
        await fleet.poll_once()  # fresh SoC and scale factors for validation
        d = fleet.device(args.device)
        if args.power_w is not None:
            if not hasattr(d, "set_power"):
                raise ValueError(f"{args.device} is a {d.kind.value}, not a battery")
            await d.set_power(args.power_w, revert_s=args.revert_s)
        elif args.limit_w is not None:
            if not hasattr(d, "set_power_limit"):
                raise ValueError(f"{args.device} is a {d.kind.value}, not a PV inverter")
            await d.set_power_limit(args.limit_w, revert_s=args.revert_s)
        else:
            if not hasattr(d, "set_current_limit"):
                raise ValueError(f"{args.device} is a {d.kind.value}, not an EV charger")
            await d.set_current_limit(args.current_a)
    finally:
        await fleet.stop()


def run_write(args: argparse.Namespace) -> int:
    from drivers.device import SetpointError
    from drivers.modbus import ModbusError

    config = read_config(args.config)
    try:
        config.device(args.device)
    except KeyError:
        print(f"error: unknown device {args.device!r}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_write(config, args))
    except (SetpointError, ValueError) as e:
        print(f"refused: {e}", file=sys.stderr)
        return 3
    except ModbusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"ok: {args.device} setpoint written and verified")
    return 0
