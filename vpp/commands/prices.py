"""``vpp prices``: check, install and show price data (:mod:`vpp.forecast.prices`).

* ``vpp prices check FILE [--kind spot|imbalance] [--area 東北]`` — parse the whole file; print
  its days and price range, or the first error naming row and field (exit 2).
* ``vpp prices install FILE DIR …`` — the same check, then copy into ``DIR`` atomically (a
  temporary file renamed into place): a bad file leaves nothing behind, a good one replaces
  the old one whole.
* ``vpp prices show --config SITE --day YYYY-MM-DD [--json]`` — the 48 prices a plan for that
  day uses, with each slot's source (``jepx``, ``forecast <day>``, ``tou``) and the version.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

from vpp.config import JEPX_AREAS, read_config
from vpp.forecast.prices import PriceFileError, price_provider, read_imbalance_csv, read_jepx_spot
from vpp.market.prices import day_slots


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("prices", help="check, install and show JEPX / imbalance price data")
    sub = p.add_subparsers(dest="prices_cmd", required=True)
    for name in ("check", "install"):
        c = sub.add_parser(name, help=f"{name} a JEPX spot or imbalance price file")
        c.add_argument("file")
        if name == "install":
            c.add_argument("dir", help="folder to install into (the file keeps its name)")
        c.add_argument("--kind", choices=["spot", "imbalance"], default="spot")
        c.add_argument("--area", choices=JEPX_AREAS, default="東北")
        c.add_argument("--tz", default="Asia/Tokyo")
        c.set_defaults(func=run_check)
    s = sub.add_parser("show", help="the day's per-slot prices a plan uses")
    s.add_argument("--config", required=True)
    s.add_argument("--day", required=True)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=run_show)


def _read(args: argparse.Namespace):
    if args.kind == "spot":
        df = read_jepx_spot(args.file, args.area, args.tz)
        return df, df["area"]
    imb = read_imbalance_csv(args.file, args.area, args.tz)
    return imb.frame, imb.frame["shortage"]


def run_check(args: argparse.Namespace) -> int:
    try:
        df, col = _read(args)
    except PriceFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    days = sorted({t.date() for t in df.index.tz_convert(args.tz)})
    print(f"{args.file}: {args.kind} prices for {args.area}, {len(days)} day(s) {days[0]} … {days[-1]}, "
          f"{len(df)} コマ, {col.min():.2f} … {col.max():.2f} 円/kWh")
    if args.prices_cmd == "install":
        dest = Path(args.dir)
        dest.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=".installing-")
        os.close(fd)
        try:
            shutil.copyfile(args.file, tmp)
            os.replace(tmp, dest / Path(args.file).name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        print(f"installed {dest / Path(args.file).name}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    try:
        day = date.fromisoformat(args.day)
        frame = price_provider(config).energy(day_slots(day, config.site.timezone))
    except (PriceFileError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tz = config.site.timezone
    rows = [{"slot_start": t.tz_convert(tz).isoformat(), "buy_per_kwh": round(float(r["buy_per_kwh"]), 3),
             "sell_per_kwh": round(float(r["sell_per_kwh"]), 3),
             "spot_per_kwh": None if r["spot_per_kwh"] != r["spot_per_kwh"] else float(r["spot_per_kwh"]),
             "source": str(r["price_source"])} for t, r in frame.iterrows()]
    if args.json:
        json.dump({"site": config.site.name, "day": day.isoformat(), "version": frame.attrs.get("version", ""),
                   "slots": rows}, sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    print(f"prices for {config.site.name} on {day} ({frame.attrs.get('version', '')})")
    for r in rows:
        print(f"  {r['slot_start'][11:16]}  buy {r['buy_per_kwh']:7.2f}  sell {r['sell_per_kwh']:7.2f}  {r['source']}")
    return 0
