"""``vpp devices``: list the configured devices, read them once, or send one validated setpoint.

``vpp devices list --config FILE [--json]``
    id, kind, protocol (modbus, echonet_lite, ocpp) and address of every device; no I/O.
``vpp devices read --config FILE [--json]``
    one decoded snapshot per device (table, or one JSON object per line). Modbus and ECHONET
    Lite devices are polled; OCPP stations connect to the running service instead, so their
    row says to read them through its API (``/api/v1/ev/sessions``) and does not count as a
    failure. ``vpp devices write`` refuses OCPP stations the same way (status 3).
``vpp devices write --config FILE DEVICE (--power-w W | --limit-w W | --current-a A) [--revert-s S]``
    battery power (> 0 discharge), PV active-power limit or EV current limit; refused
    setpoints exit with status 3 and write nothing.

Writes are leases like the control loop's: ``--revert-s`` defaults to ``optimiser.lease_s``
(0 means "never revert" in the register maps). A battery discharge is checked against the
reserve floor in force (the config's reserve with the operator's floor and storm mode from
the ledger, as the service restores them): refused at or below the floor, and refused when,
held from the reading's time until the lease reverts, it could cross the floor
(:func:`vpp.control.reserve.lease_discharge_cap_w`; a discharge that never reverts is
refused). Every attempt (written, refused or failed) is a ``device_write`` audit record in
the ledger (``api.ledger_path``), actor ``cli:<user>``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from datetime import datetime, timedelta, timezone

from rich.console import Console
from rich.table import Table

from vpp.commands.device_listing import OCPP_WRITE_HINT, list_rows, ocpp_snapshot
from vpp.commands.jsonout import stdout_to_stderr
from vpp.config import read_config


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("devices", help="list or read devices, or send a setpoint (Modbus, ECHONET Lite)")
    sub = p.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="list the configured devices with their protocol and address")
    ls.add_argument("--config", required=True, help="site config YAML")
    ls.add_argument("--json", action="store_true", help="one JSON object per device and line")
    ls.set_defaults(func=run_list)
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
                   help="device falls back after this many s without a new command "
                        "(default: optimiser.lease_s; 0 = never, refused for a discharge)")
    w.set_defaults(func=run_write)


def _snapshot_dict(s, protocol: str) -> dict:
    return {"device": s.device, "kind": s.kind.value, "protocol": protocol, "ts": s.ts.isoformat(),
            "quality": s.quality.value, "reason": s.reason, "values": s.values}


def run_list(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    rows = list_rows(list(config.devices))
    if args.json:
        for r in rows:
            print(json.dumps(r, sort_keys=True))
        return 0
    t = Table(title=f"{config.site.name}: {len(rows)} devices")
    for col in ("device", "kind", "protocol", "address", "read"):
        t.add_column(col)
    for r in rows:
        t.add_row(*(r[c] for c in ("device", "kind", "protocol", "address", "read")))
    Console().print(t)
    return 0


async def _read(config, only: list[str] | None) -> list:
    from drivers.fleet import DriverFleet
    from drivers.protocols import Quality, Snapshot

    fleet = DriverFleet(config)
    try:
        await fleet.poll_once()
        ids = only or [d.id for d in config.devices]
        snaps = []
        for i in ids:
            if config.device(i).protocol == "ocpp":
                snaps.append(ocpp_snapshot(config.device(i), datetime.now(timezone.utc)))
                continue
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
    known = {d.id for d in config.devices}
    if unknown := [i for i in args.device or [] if i not in known]:
        print(f"error: unknown device {', '.join(map(repr, unknown))}", file=sys.stderr)
        return 2
    proto = {d.id: d.protocol for d in config.devices}
    with stdout_to_stderr(args.json):  # --json: stdout carries the JSON lines only
        snaps = asyncio.run(_read(config, args.device))
    if args.json:
        for s in snaps:
            print(json.dumps(_snapshot_dict(s, proto[s.device]), sort_keys=True))
    else:
        console = Console()
        for s in snaps:
            t = Table(title=f"{s.device} ({s.kind.value}, {proto[s.device]}) — {s.quality.value}"
                            + (f": {s.reason}" if s.reason else ""))
            t.add_column("field")
            t.add_column("value", justify="right")
            for k, v in s.values.items():
                t.add_row(k, f"{v:,.3f}".rstrip("0").rstrip("."))
            console.print(t)
    # an OCPP row is not a failure: it was never meant to be read here (its reason says where)
    return 0 if all(s.quality.value == "good" for s in snaps if proto[s.device] != "ocpp") else 1


def floor_in_force(config, ledger, battery_id: str, now: datetime) -> float:
    """Reserve floor [fraction] of ``battery_id`` at ``now``: the reserve policy the service
    would restore from ``ledger`` (:meth:`~vpp.control.reserve_policy.ReservePolicy.replay`:
    the operator's floor, never below the config's, and storm mode), nothing written."""
    from vpp.control.reserve import StormMode, battery_floor, capacity_shares
    from vpp.control.reserve_policy import ReservePolicy, reserve_records

    policy = ReservePolicy(config.reserve, lambda: now,
                           storm=StormMode(lead=timedelta(hours=config.reserve.storm_lead_h)))
    recs = reserve_records(ledger) if ledger is not None else []
    if recs:
        policy.replay(recs)
    share = capacity_shares(config.devices_of("battery")).get(battery_id, 1.0)  # as the controller shares it
    return float(battery_floor(policy.reserve(), config.device(battery_id), [now], policy.storm, share)[0])


def check_discharge(d, watts: float, revert_s: float, floor: float, now: datetime, checked: dict) -> None:
    """Raise ``ValueError`` unless discharging ``watts`` [W] on battery handle ``d`` for the
    reading's age plus ``revert_s`` [s] keeps its SoC at or above ``floor`` [fraction];
    what was checked goes into ``checked`` (for the audit record), also when refused."""
    from vpp.control.reserve import lease_discharge_cap_w

    soc = d.decoded().get("soc") if d.image else None
    if soc is None or not math.isfinite(soc):
        raise ValueError(f"{d.id}: SoC unknown, cannot check the reserve floor")
    ts = d.latest.ts if d.latest is not None else now
    age_s = max((now - ts).total_seconds(), 0.0)
    r = d.config.ratings
    horizon_s = revert_s + age_s if revert_s > 0 else math.inf
    cap = lease_discharge_cap_w(soc, floor, r.capacity_wh, r.discharge_efficiency, horizon_s)
    checked.update(soc=round(soc, 4), floor=round(floor, 4), reading_age_s=round(age_s, 1),
                   max_discharge_w=round(cap, 1))
    if soc <= floor:
        raise ValueError(f"{d.id}: SoC {soc:.3f} at or below the reserve floor {floor:.3f}, cannot discharge")
    if revert_s <= 0:
        raise ValueError(f"{d.id}: a discharge that never reverts (revert 0 s) could cross the reserve "
                         f"floor {floor:.3f}; give --revert-s")
    if watts > cap:
        raise ValueError(f"{d.id}: discharge {watts:.0f} W for {horizon_s:.0f} s could cross the reserve floor "
                         f"{floor:.3f} (SoC {soc:.3f}); at most {cap:.0f} W")


async def _write(config, args, ledger=None, checked: dict | None = None) -> None:
    from drivers.fleet import DriverFleet

    fleet = DriverFleet(config)
    try:
        await fleet.poll_once()  # fresh SoC and scale factors for validation
        d = fleet.device(args.device)
        if args.power_w is not None:
            if not hasattr(d, "set_power"):
                raise ValueError(f"{args.device} is a {d.kind.value}, not a battery")
            d.validate_power(args.power_w, args.revert_s)
            if args.power_w > 0:
                now = datetime.now(timezone.utc)
                floor = floor_in_force(config, ledger, args.device, now)
                check_discharge(d, args.power_w, args.revert_s, floor, now, checked if checked is not None else {})
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
    from vpp.market.ledger import Ledger

    config = read_config(args.config)
    try:
        config.device(args.device)
    except KeyError:
        print(f"error: unknown device {args.device!r}", file=sys.stderr)
        return 2
    if args.revert_s is None and args.current_a is None:
        args.revert_s = float(config.optimiser.lease_s)  # a lease, as the control loop writes
    what = ({"power_w": args.power_w} if args.power_w is not None else
            {"limit_w": args.limit_w} if args.limit_w is not None else {"current_a": args.current_a})
    checked: dict = {}
    ledger = Ledger.open(config.api.ledger_path)
    try:
        rc, result, why = 0, "written", ""
        try:
            if config.device(args.device).protocol == "ocpp":
                raise ValueError(f"{args.device}: {OCPP_WRITE_HINT}")  # before any I/O
            asyncio.run(_write(config, args, ledger, checked))
        except (SetpointError, ValueError) as e:
            rc, result, why = 3, "refused", str(e)
            print(f"refused: {e}", file=sys.stderr)
        except ModbusError as e:
            rc, result, why = 1, "failed", str(e)
            print(f"error: {e}", file=sys.stderr)
        ledger.audit(f"cli:{_user()}", "device_write", device=args.device, **what, revert_s=args.revert_s,
                     result=result, reason=why, **checked)
    finally:
        ledger.close()
    if rc == 0:
        print(f"ok: {args.device} setpoint written and verified (revert {args.revert_s:g} s)"
              if args.revert_s is not None else f"ok: {args.device} setpoint written and verified")
    return rc


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (container): still audited
        return "unknown"
