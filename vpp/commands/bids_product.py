"""``vpp bids --product 三次②``: the bid checked against an EPRX product row and pooled with
other resources' bids (``--pool`` = other ``vpp bids --json`` outputs for the same day) up to
the product's minimum lot (:mod:`vpp.market.products`). Slots the pool cannot lift to the lot
are dropped with the reason; the offered kW are rounded down to the product's step."""
from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from vpp.market.products import ProductError, aggregate, catalogue, check_offer

__all__ = ["add_product_args", "product_section", "ProductError"]


def add_product_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--product", help="EPRX product (一次, 二次①, 二次②, 三次①, 三次② or its code): check and pool")
    p.add_argument("--dispatch", choices=["dedicated_line", "simplified"],
                   help="dispatch mode for the minimum lot (default: simplified where the product has it)")
    p.add_argument("--pool", action="append", default=[], metavar="BIDS.json",
                   help="another resource's `vpp bids --json` output for the same day, pooled with this site")


def _read_pool(path: str, day: str) -> dict[datetime, float]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        if doc.get("day") != day:
            raise ProductError(f"--pool {path} is for {doc.get('day')}, not {day}", "pool_day", "pool")
        return {datetime.fromisoformat(o["slot_start"]): float(o["up_kw"]) for o in doc["offers"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ProductError(f"--pool {path}: {e}", "pool_unreadable", "pool") from None


def product_section(args: argparse.Namespace, site: str, day: str, offers: list[dict[str, Any]],
                    now: datetime) -> dict[str, Any]:
    """The pooled offer for ``--product`` (raises :class:`ProductError` on a bad product,
    pool file or a gate already closed)."""
    product = catalogue().get(args.product)
    lot, mode = product.lot_kw(args.dispatch)
    resources = {site: {datetime.fromisoformat(o["slot_start"]): float(o["up_kw"]) for o in offers}}
    for i, path in enumerate(args.pool):
        resources[f"pool{i + 1}:{Path(path).name}"] = _read_pool(path, day)
    pooled = aggregate(product, resources, dispatch=args.dispatch)
    offered = [(s.start, s.kw) for s in pooled if s.kw > 0]
    if offered:
        check_offer(product, offered, now, pooled=False, dispatch=args.dispatch)
    first = pooled[0].start.date() if pooled else None
    return {"name": product.name, "code": product.code, "dispatch": mode, "min_lot_kw": lot,
            "step_kw": product.step_kw, "response_s": product.response_s,
            "unit_s": product.unit_s(first) if first else None, "resources": list(resources),
            "slots": [{"slot_start": s.start.isoformat(), "pooled_kw": round(s.pooled_kw, 3), "offered_kw": s.kw,
                       "reason": s.reason} for s in pooled],
            "offered_kwh": sum(s.kw for s in pooled) / 2.0}
