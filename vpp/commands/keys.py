"""``vpp keys``: create, list and revoke API keys (the plaintext key is printed once, never
stored). A running service refuses a revoked key within about a second and ends its event
streams."""
from __future__ import annotations

import argparse
import getpass
import sys

from datetime import timedelta

from vpp.api.auth import ROLES, create_key, key_state, read_keys, revoke_key
from vpp.config import read_config
from vpp.market.ledger import Ledger


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("keys", help="manage API keys", description="Manage API keys of the HTTP API.")
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    c = sub.add_parser("create", help="create a key and print it once")
    c.add_argument("--config", required=True, help="site config YAML (uses api.keys_path)")
    c.add_argument("--role", required=True, choices=ROLES)
    c.add_argument("--name", required=True, help="who or what uses the key")
    c.add_argument("--expires-days", type=float, default=None, help="the key is refused after this many days")
    c.set_defaults(func=run_create)
    ls = sub.add_parser("list", help="list keys (ids, roles, names, state, expiry; no secrets)")
    ls.add_argument("--config", required=True, help="site config YAML")
    ls.set_defaults(func=run_list)
    rv = sub.add_parser("revoke", help="revoke a key (kept in the file, refused from now on)")
    rv.add_argument("--config", required=True, help="site config YAML")
    rv.add_argument("--id", required=True, help="key id (the 8 hex characters after vpp_)")
    rv.set_defaults(func=run_revoke)


def run_create(args: argparse.Namespace) -> int:
    cfg = read_config(args.config)
    try:
        if args.expires_days is not None and not args.expires_days > 0:
            raise ValueError("--expires-days must be positive")
        expires = timedelta(days=args.expires_days) if args.expires_days is not None else None
        key, principal = create_key(cfg.api.keys_path, args.role, args.name, expires_in=expires)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ledger = Ledger.open(cfg.api.ledger_path)
    try:
        ledger.audit(f"cli:{getpass.getuser()}", "api_key_created", key_id=principal.key_id,
                     name=principal.name, role=principal.role,
                     expires=principal.expires.isoformat() if principal.expires else None)
    finally:
        ledger.close()
    print(key)
    print(f"key {principal.key_id} ({principal.role}, {principal.name!r}) added to {cfg.api.keys_path}; "
          "store it now, it cannot be shown again", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    cfg = read_config(args.config)
    for e in read_keys(cfg.api.keys_path):
        print(f"{e['id']}  {e['role']:<10}  {key_state(e):<7}  {e['name']}  created {e['created']}"
              f"  expires {e.get('expires') or 'never'}" + (f"  revoked {e['revoked']}" if e.get("revoked") else ""))
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    cfg = read_config(args.config)
    try:
        e = revoke_key(cfg.api.keys_path, args.id)
    except KeyError:
        print(f"error: no key with id {args.id!r} in {cfg.api.keys_path}", file=sys.stderr)
        return 2
    ledger = Ledger.open(cfg.api.ledger_path)
    try:
        ledger.audit(f"cli:{getpass.getuser()}", "api_key_revoked", key_id=e["id"], name=e["name"], role=e["role"])
    finally:
        ledger.close()
    print(f"key {e['id']} ({e['role']}, {e['name']!r}) revoked", file=sys.stderr)
    return 0
