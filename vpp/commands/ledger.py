"""``vpp ledger verify``: check the settlement ledger's hash chain.

Exit status 0 when the chain holds, 1 when a record is broken (the first one is named),
2 on a config error. ``--json`` prints :meth:`vpp.storage.ledger.ChainReport.as_dict`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vpp.config import read_config
from vpp.market.ledger import Ledger


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ledger", help="settlement ledger tools",
                              description="Tools for the append-only settlement ledger.")
    sub = p.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    v = sub.add_parser("verify", help="check the hash chain; name the first broken record")
    v.add_argument("--config", required=True, help="site config YAML (uses api.ledger_path)")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(func=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    cfg = read_config(args.config)
    path = Path(cfg.api.ledger_path)
    if not path.exists():
        print(f"error: no ledger at {path}", file=sys.stderr)
        return 2
    ledger = Ledger.open(path)
    try:
        report = ledger.verify()
    finally:
        ledger.close()
    if args.json:
        print(json.dumps(report.as_dict(), sort_keys=True))
    elif report.ok:
        print(f"ledger {path}: chain intact, {report.hashed} hashed records"
              + (f", {report.unchained} older records without hashes" if report.unchained else ""))
    else:
        print(f"ledger {path}: BROKEN at record seq {report.broken_seq} (id {report.broken_id}): {report.reason}")
    return 0 if report.ok else 1
