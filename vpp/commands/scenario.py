"""``vpp scenario``: list the shipped hardware-in-the-loop scenarios, or run one against the
real controller and the simulated devices (loopback Modbus) and check its assertions.

Exit status of ``run``: 0 when every assertion holds, 1 when one fails, 2 on bad input.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vpp.commands.jsonout import stdout_to_stderr


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("scenario", help="run hardware-in-the-loop scenarios",
                              description="Prove a configuration against simulated devices before it "
                                          "touches hardware.")
    sub = p.add_subparsers(dest="scenario_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="list the shipped scenarios")
    ls.set_defaults(func=run_list)
    r = sub.add_parser("run", help="run one scenario headless and check its assertions")
    r.add_argument("name", help="scenario name (see `vpp scenario list`) or a scenario YAML path")
    r.add_argument("--config", help="site config YAML to prove (default: the scenario's own)")
    r.add_argument("--speed", default="max",
                   help="simulated seconds per wall second, or 'max' (default)")
    r.add_argument("--report", metavar="DIR", help="write kpis.json, record.csv and report.html here")
    r.add_argument("--png", action="store_true",
                   help="with --report: also write each plot as DIR/<plot>.png (rendered by the system "
                        "Chromium via Playwright; skipped with a message when missing)")
    r.add_argument("--hours", type=float, help="simulate only this many hours")
    r.add_argument("--homes", type=int, help="town scenarios: number of homes instead of the scenario's")
    r.add_argument("--json", action="store_true", help="print the KPIs as JSON")
    r.set_defaults(func=run_one)


def run_list(args: argparse.Namespace) -> int:
    from simulators.scenarios.spec import list_scenarios, read_scenario

    t = Table(title="scenarios")
    for col in ("name", "hours", "site config", "description"):
        t.add_column(col)
    for name in list_scenarios():
        sc = read_scenario(name)
        t.add_row(name, f"{sc.duration_h:g}", sc.config, " ".join(sc.description.split()).split(". ")[0])
    Console().print(t)
    return 0


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    v = float(text)
    if v <= 0:
        raise ValueError("--speed must be > 0 or 'max'")
    return v


def write_pngs(html_path, out_dir) -> None:
    """The report's plots as PNGs, or one line on stderr saying why they are skipped."""
    from simulators.scenarios.png import PngUnavailable
    from simulators.scenarios.png import write_pngs as render
    from simulators.scenarios.report import PLOTS

    try:
        paths = render(html_path, PLOTS, out_dir)
    except PngUnavailable as e:
        print(f"PNG plots skipped: {e}", file=sys.stderr)
        return
    print("PNG plots: " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)


def run_one(args: argparse.Namespace) -> int:
    from simulators.scenarios.report import summary, write_report
    from simulators.scenarios.runner import run_scenario
    from simulators.scenarios.spec import read_scenario
    from vpp.config import read_config

    try:
        speed = _speed(args.speed)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.png and not args.report:
        print("error: --png needs --report DIR (the PNGs are written there)", file=sys.stderr)
        return 2
    sc = read_scenario(args.name)
    if args.homes is not None:
        if sc.town is None:
            print(f"error: scenario {sc.name} is not a town scenario (--homes)", file=sys.stderr)
            return 2
        sc.town.homes = args.homes
    config = read_config(args.config) if args.config else None
    console = Console(stderr=True)
    total_h = args.hours if args.hours is not None else sc.duration_h
    # with --json, stdout carries the KPI document only (a solver's banner goes to stderr)
    with stdout_to_stderr(args.json), Progress(
            TextColumn(f"[bold]{sc.name}"), BarColumn(), TextColumn("{task.fields[sim]}"),
            TimeElapsedColumn(), console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("run", total=total_h * 3600, sim="")

        def on_progress(done: float, total: float) -> None:
            progress.update(task, completed=done, sim=f"{done / 3600:.1f}/{total / 3600:.1f} h")

        result = asyncio.run(run_scenario(sc, config, speed=speed, hours=args.hours, on_progress=on_progress))
        if args.report:
            paths = write_report(result, args.report)
            console.print(f"report: {paths['html']}")
            if args.png:
                write_pngs(paths["html"], args.report)
    if args.json:
        print(json.dumps(summary(result), default=str))
    else:
        t = Table(title=f"{sc.name}: {'PASSED' if result.passed else 'FAILED'}")
        t.add_column("KPI")
        t.add_column("value", justify="right")
        for k, v in result.kpis.items():
            t.add_row(k, f"{v:.4g}")
        Console().print(t)
        if result.shed_order:
            Console().print("load shed order: " + " → ".join(result.shed_order))
        for f in result.failures:
            Console().print(f"[red]assertion failed: {f}")
    return 0 if result.passed else 1
