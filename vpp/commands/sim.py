"""``vpp sim``: run the simulated site of a config on loopback (Modbus TCP devices, ECHONET Lite
homes: one node per home address, UDP 3610) until Ctrl-C."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from datetime import datetime, timezone

from rich.console import Console
from rich.table import Table

from drivers.fields import TABLE
from vpp.config import read_config

#: How an SI unit of the field table (:mod:`drivers.fields`) is shown to people: (unit, factor).
_SHOWN_AS = {"W": ("kW", 1e-3), "Wh": ("kWh", 1e-3), "fraction": ("%", 100.0)}
_UNITS = {f.name: _SHOWN_AS.get(f.unit, (f.unit, 1.0)) for f in TABLE}
_SHOWN = {"pv": ["power_w", "power_limit_w"], "battery": ["power_w", "soc", "setpoint_w"],
          "ev_charger": ["power_w", "state", "current_limit_a", "session_energy_wh"],
          "meter": ["power_w", "import_energy_wh", "export_energy_wh"]}
_EV_STATES = {1: "A", 2: "B", 3: "C", 4: "D", 5: "E", 6: "F"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sim", help="run simulated devices (Modbus TCP, ECHONET Lite homes) on loopback",
                              description="Serve every device of the config from simulators "
                                          "on its configured host:port/device id.")
    p.add_argument("--config", required=True, help="site config YAML")
    p.add_argument("--speed", type=float, default=1.0,
                   help="simulated seconds per wall second (default 1)")
    p.add_argument("--start", help="simulated start time, ISO 8601 (default: now)")
    p.add_argument("--seed", type=int, default=0, help="seed for loads and EV arrivals")
    p.add_argument("--interval", type=float, default=5.0,
                   help="wall seconds between printed readings (default 5)")
    p.add_argument("--ocpp-url", default=None,
                   help="central system the OCPP stations connect to (default: the config's ocpp "
                        "host:port, ws://…/ocpp/ or wss:// with security profile 2)")
    p.add_argument("--ocpp-ca", default=None, help="CA certificate (PEM) the stations trust for wss://")
    p.add_argument("--duration", type=float, default=None,
                   help="stop after this many wall seconds (default: run until Ctrl-C)")
    p.set_defaults(func=run)


def _fmt(name: str, value: float) -> str:
    unit, k = _UNITS.get(name, ("", 1.0))
    if name == "state":
        return _EV_STATES.get(int(value), "?")
    return f"{value * k:,.1f}{unit and ' ' + unit}"


def endpoint_table(site) -> Table:
    t = Table(title=f"simulated devices — {site.config.site.name}")
    for col in ("device", "kind", "register map", "host:port", "device id"):
        t.add_column(col)
    for dev_id, (host, port, unit) in site.endpoints.items():
        d = site.config.device(dev_id)
        t.add_row(dev_id, d.kind, d.register_map, f"{host}:{port}", str(unit))
    for dev_id, st in site.ocpp.stations.items():
        t.add_row(dev_id, "ev_charger", f"OCPP {st.version}", st.url + dev_id, "-")
    if site.echonet is not None:  # ECHONET Lite homes: one node per home address, EOJ per object
        for dev_id, (host, port, eoj) in site.echonet.endpoints().items():
            d = site.config.device(dev_id)
            t.add_row(dev_id, d.kind, d.register_map, f"{host}:{port}", f"EOJ {eoj}")
    return t


def ocpp_url(config, given: str | None) -> str:
    """Where the simulated OCPP stations connect: ``given``, else the config's central system."""
    if given:
        return given
    o = config.ocpp
    return f"{'wss' if o.security_profile == 2 else 'ws'}://{o.host}:{o.port}/ocpp/"


def readings_table(site) -> Table:
    now = site.clock.now().astimezone(site._tz)
    t = Table(title=f"{now:%Y-%m-%d %H:%M:%S %Z}   load {sum(site.load_w.values()) / 1e3:,.1f} kW"
                    f"   grid {site.grid_power_w() / 1e3:,.1f} kW"
                    f"{'   GRID OUTAGE' if site.grid_outage else ''}")
    t.add_column("device")
    t.add_column("readings")
    t.add_column("writes", justify="right")
    for dev_id, m in site.models.items():
        v = m.values()
        shown = "  ".join(f"{n}={_fmt(n, v[n])}" for n in _SHOWN[m.kind.value] if n in v)
        t.add_row(dev_id, shown, str(m.writes))
    for dev_id, st in site.ocpp.stations.items():
        m = st.model
        shown = (f"power_w={_fmt('power_w', m.power_w)}  current_limit_a={_fmt('current_limit_a', m.limit_a())}"
                 f"  tx={m.tx_id or '-'}  {'connected' if st.ws is not None and st.ws.state.name == 'OPEN' else 'offline'}")
        t.add_row(dev_id, shown, str(len(m.profiles)))
    return t


async def _serve(args: argparse.Namespace, console: Console) -> None:
    from simulators.clock import SimClock
    from simulators.site import SimulatedSite

    config = read_config(args.config)
    start = datetime.fromisoformat(args.start) if args.start else datetime.now(timezone.utc)
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    site = SimulatedSite(config, SimClock(start, speed=args.speed), seed=args.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await site.start()
    if len(site.ocpp):
        import ssl

        ctx = None
        if args.ocpp_ca or config.ocpp.security_profile == 2:
            ctx = ssl.create_default_context(cafile=args.ocpp_ca)
        site.ocpp.ssl_context = ctx
        site.attach_ocpp(ocpp_url(config, args.ocpp_url))
    try:
        console.print(endpoint_table(site))
        console.print(f"speed ×{args.speed:g}; Ctrl-C to stop", style="dim")
        deadline = None if args.duration is None else loop.time() + args.duration
        while not stop.is_set():
            console.print(readings_table(site))
            wait = args.interval if deadline is None else min(args.interval, deadline - loop.time())
            if wait <= 0:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
    finally:
        await site.stop()
        console.print("simulator stopped", style="dim")


def run(args: argparse.Namespace) -> int:
    console = Console(file=sys.stdout, width=max(100, Console().width or 100))
    if args.speed <= 0:
        print("error: --speed must be > 0", file=sys.stderr)
        return 2
    asyncio.run(_serve(args, console))
    return 0
