"""EPRX balancing products as data (``products.yaml`` beside this module) and the rules an
offer must meet for one of them.

One row per product (一次, 二次①, 二次②, 三次①, 三次②): response time, minimum duration,
trading unit (30-min コマ from ``coma_since``, ``block_s_before`` blocks — 3 h — before),
gate closure (14:00 Japan time the day before), minimum lot per dispatch mode (専用線
``dedicated_line``, 簡易指令 ``simplified``), step [kW], metering and assessment rule.

Rules (:func:`check_offer`, the same for ``vpp bids --product`` and ``POST /offers``):

* gate closure: every slot's delivery day must still be open (``now`` before its gate);
* step: every kW is a whole multiple of ``step_kw``;
* trading unit: before ``coma_since`` the slots of an offer come in whole blocks (aligned to
  local midnight) with one kW per block;
* minimum lot: a slot offered on its own (``pooled`` False) is 0 or at least the lot of the
  dispatch mode (the simplified lot where the product has one); a pooled offer (a list-pattern
  contribution) meets the lot in the aggregate (:func:`aggregate`).

:class:`ProductError` carries a machine ``code`` and names the slot and field.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vpp.slots import SLOT_S

__all__ = ["ProductError", "Product", "Catalogue", "catalogue", "check_offer", "aggregate", "PooledSlot"]

Dispatch = Literal["dedicated_line", "simplified"]


class ProductError(ValueError):
    """An offer breaks a product rule; ``code`` names the rule, ``field`` the offending field."""

    def __init__(self, message: str, code: str, field: str = "") -> None:
        super().__init__(message)
        self.code, self.field = code, field


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Gate(_Row):
    days_before: Annotated[int, Field(ge=0, le=7)]
    local_time: time


class Product(_Row):
    """One product row (field meanings in the module docstring); seconds, kW."""

    name: str
    code: str
    response_s: Annotated[float, Field(gt=0)]
    min_duration_s: Annotated[float, Field(gt=0)]
    coma_since: date
    block_s_before: Annotated[int, Field(gt=0, multiple_of=SLOT_S)]
    gate_closure: Gate
    min_lot_kw: dict[Dispatch, Annotated[float, Field(gt=0)]]
    step_kw: Annotated[float, Field(gt=0)]
    metering: str
    assessment: str

    def unit_s(self, day: date) -> int:
        """Trading unit on delivery ``day`` [s]: 1800 (コマ) from ``coma_since``, blocks before."""
        return SLOT_S if day >= self.coma_since else self.block_s_before

    def gate(self, day: date, tz: str) -> datetime:
        """Gate closure for delivery ``day`` (tz-aware)."""
        g = self.gate_closure
        return datetime.combine(day - timedelta(days=g.days_before), g.local_time, tzinfo=ZoneInfo(tz))

    def lot_kw(self, dispatch: Dispatch | None = None) -> tuple[float, Dispatch]:
        """Minimum lot [kW] and the dispatch mode it is for (default: simplified if offered)."""
        mode: Dispatch = dispatch or ("simplified" if "simplified" in self.min_lot_kw else "dedicated_line")
        if mode not in self.min_lot_kw:
            raise ProductError(f"{self.name} has no {mode} dispatch (only {', '.join(self.min_lot_kw)})",
                               "no_such_dispatch", "dispatch")
        return self.min_lot_kw[mode], mode


class _File(_Row):
    timezone: str
    products: list[Product]


@dataclass(frozen=True)
class Catalogue:
    """The product table; look products up by name (三次②) or code (tertiary2)."""

    timezone: str
    products: tuple[Product, ...]

    def get(self, key: str) -> Product:
        for p in self.products:
            if key in (p.name, p.code):
                return p
        raise ProductError(f"unknown product {key!r} (one of {', '.join(p.name for p in self.products)})",
                           "unknown_product", "product")

    def find(self, key: str | None) -> Product | None:
        """The product ``key`` names, None for None or a name that is not in the table."""
        return next((p for p in self.products if key in (p.name, p.code)), None) if key else None


def load_catalogue(path: str | Path) -> Catalogue:
    """Read and check a product table (pydantic names the failing row field)."""
    try:
        f = _File.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    except ValidationError as e:
        first = e.errors()[0]
        raise ValueError(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    return Catalogue(f.timezone, tuple(f.products))


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """The shipped table (``vpp/market/products.yaml``)."""
    return load_catalogue(Path(__file__).with_name("products.yaml"))


def _day(start: datetime, tz: str) -> date:
    return start.astimezone(ZoneInfo(tz)).date()


def _block(start: datetime, tz: str, unit_s: int) -> datetime:
    loc = start.astimezone(ZoneInfo(tz))
    sod = loc.hour * 3600 + loc.minute * 60
    return loc - timedelta(seconds=sod % unit_s)


def check_offer(product: Product, slots: Sequence[tuple[datetime, float]], now: datetime, *, pooled: bool,
                dispatch: Dispatch | None = None, tz: str | None = None) -> None:
    """Raise :class:`ProductError` unless the offer ``slots`` (``(start, kW)``) meets the
    product's rules at ``now`` (module docstring)."""
    tz = tz or catalogue().timezone
    lot, mode = product.lot_kw(dispatch)
    for start, kw in slots:
        day = _day(start, tz)
        gate = product.gate(day, tz)
        if now >= gate:
            raise ProductError(f"{product.name}: gate closure for {day.isoformat()} was {gate.isoformat()} "
                               f"(slot {start.isoformat()})", "gate_closed", "slots.start")
        steps = kw / product.step_kw
        if abs(steps - round(steps)) > 1e-6:
            raise ProductError(f"{product.name}: {kw:g} kW at {start.isoformat()} is not a multiple of the "
                               f"{product.step_kw:g} kW step", "off_step", "slots.capacity_kw")
        if not pooled and 0 < kw < lot - 1e-9:
            raise ProductError(f"{product.name}: {kw:g} kW at {start.isoformat()} is below the minimum lot "
                               f"{lot:g} kW ({mode}); pool it with other resources", "below_lot",
                               "slots.capacity_kw")
    by_block: dict[datetime, list[tuple[datetime, float]]] = {}
    for start, kw in slots:
        unit = product.unit_s(_day(start, tz))
        if unit != SLOT_S:
            by_block.setdefault(_block(start, tz, unit), []).append((start, kw))
    for b, members in by_block.items():
        unit = product.unit_s(b.date())
        if len(members) != unit // SLOT_S or len({kw for _, kw in members}) != 1:
            raise ProductError(f"{product.name} trades {unit // 3600} h blocks on {b.date().isoformat()} "
                               f"(コマ from {product.coma_since.isoformat()}): the block from {b.isoformat()} "
                               f"needs all {unit // SLOT_S} slots with one kW", "block_unit", "slots")


@dataclass(frozen=True)
class PooledSlot:
    """One slot of an aggregated offer: ``kw`` offered (0 = dropped, ``reason`` why),
    ``pooled_kw`` the sum of the resources before the lot and step rules [kW]."""

    start: datetime
    kw: float
    pooled_kw: float
    reason: str = ""


def aggregate(product: Product, offers: Mapping[str, Mapping[datetime, float]], *,
              dispatch: Dispatch | None = None, tz: str | None = None) -> list[PooledSlot]:
    """List-pattern aggregation: per slot, the sum of the resources' kW (``offers[resource][start]``)
    rounded down to the step (before ``coma_since``: the block's smallest slot), offered if it
    reaches the minimum lot, else dropped with the reason."""
    tz = tz or catalogue().timezone
    lot, mode = product.lot_kw(dispatch)
    starts = sorted({s for o in offers.values() for s in o})
    total = {s: sum(float(o.get(s, 0.0)) for o in offers.values()) for s in starts}
    usable = dict(total)
    blocks: dict[datetime, list[datetime]] = {}
    for s in starts:
        unit = product.unit_s(_day(s, tz))
        if unit != SLOT_S:
            blocks.setdefault(_block(s, tz, unit), []).append(s)
    for b, members in blocks.items():
        full = len(members) == product.unit_s(b.date()) // SLOT_S
        low = min(total[s] for s in members) if full else 0.0
        for s in members:
            usable[s] = low
    out = []
    for s in starts:
        kw = (usable[s] // product.step_kw) * product.step_kw
        if kw <= 0:
            out.append(PooledSlot(s, 0.0, total[s], "nothing to offer" if total[s] <= 0 else
                                  "incomplete trading block"))
        elif kw < lot - 1e-9:
            out.append(PooledSlot(s, 0.0, total[s], f"below the minimum lot: {kw:g} kW pooled from "
                                  f"{len(offers)} resource(s) < {lot:g} kW ({mode})"))
        else:
            out.append(PooledSlot(s, kw, total[s]))
    return out
