"""``vpp keys``: create and list API keys (the plaintext key is printed once, never stored)."""
from __future__ import annotations

import argparse
import getpass
import sys

from vpp.api.auth import ROLES, create_key, read_keys
from vpp.config import read_config
from vpp.market.ledger import Ledger


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("keys", help="manage API keys", description="Manage API keys of the HTTP API.")
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    c = sub.add_parser("create", help="create a key and print it once")
    c.add_argument("--config", required=True, help="site config YAML (uses api.keys_path)")
    c.add_argument("--role", required=True, choices=ROLES)
    c.add_argument("--name", required=True, help="who or what uses the key")
    c.set_defaults(func=run_create)
    ls = sub.add_parser("list", help="list keys (ids, names, roles; no secrets)")
    ls.add_argument("--config", required=True, help="site config YAML")
    ls.set_defaults(func=run_list)


def run_create(args: argparse.Namespace) -> int:
    cfg = read_config(args.config)
    try:
        key, principal = create_key(cfg.api.keys_path, args.role, args.name)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ledger = Ledger.open(cfg.api.ledger_path)
    try:
        ledger.audit(f"cli:{getpass.getuser()}", "api_key_created", key_id=principal.key_id,
                     name=principal.name, role=principal.role)
    finally:
        ledger.close()
    print(key)
    print(f"key {principal.key_id} ({principal.role}, {principal.name!r}) added to {cfg.api.keys_path}; "
          "store it now, it cannot be shown again", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    cfg = read_config(args.config)
    for e in read_keys(cfg.api.keys_path):
        print(f"{e['id']}  {e['role']:<10}  {e['name']}  {e['created']}")
    return 0
