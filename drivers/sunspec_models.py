"""SunSpec model definitions, read at run time from the JSON files pysunspec2 ships, and
the register layout of a model chain built from them.

pysunspec2 (Apache-2.0) carries the official SunSpec model JSON (``model_<id>.json``); we
read them from the installed package instead of retyping register tables.
:func:`chain_layout` places a chain of models after the "SunS" marker, :func:`chain_image`
gives the words of such a chain with every point "not implemented", and
:func:`point_type` maps a SunSpec point type onto a :mod:`drivers.converters` type.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from drivers import converters as cv

#: "SunS" as two registers: the marker at the start of a SunSpec register space.
SUNS_MARKER = (0x5375, 0x6E53)
#: Model id that ends the chain.
END_ID = 0xFFFF
#: Base addresses where devices put the marker, in the order discovery tries them.
BASE_ADDRESSES = (40000, 50000, 0)


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a model: ``offset`` in registers from the model's ID register."""

    name: str
    offset: int
    type: str
    size: int
    sf: str | int | None
    access: str      # "r" | "rw"
    units: str
    mandatory: bool


@dataclass(frozen=True, slots=True)
class ModelDef:
    id: int
    name: str
    points: dict[str, Point]
    length: int      # value of the L register: registers after ID and L

    @property
    def size(self) -> int:
        """Registers including the ID and L header."""
        return self.length + 2


def _flatten(group: dict, prefix: str, offset: int, out: dict[str, Point]) -> int:
    for p in group.get("points", []):
        name = prefix + p["name"]
        sf = p.get("sf")
        if isinstance(sf, str) and prefix:
            # an sf named inside a group refers to a top-level point when not in the group
            local = {q["name"] for q in group.get("points", [])}
            sf = prefix + sf if sf in local else sf
        out[name] = Point(name, offset, p["type"], int(p.get("size", 1)), sf,
                          "rw" if p.get("access", "R").upper() == "RW" else "r",
                          p.get("units", ""), p.get("mandatory") == "M")
        offset += int(p.get("size", 1))
    for g in group.get("groups", []):
        count = g.get("count", 1)
        if not isinstance(count, int):
            raise ValueError(f"repeating group {g['name']!r} with variable count is not supported")
        for i in range(count):
            sub = f"{prefix}{g['name']}{'' if count == 1 else f'[{i}]'}."
            offset = _flatten(g, sub, offset, out)
    return offset


@cache
def model_def(model_id: int) -> ModelDef:
    """The definition of SunSpec model ``model_id`` with flattened point offsets."""
    path = resources.files("sunspec2.models.json").joinpath(f"model_{model_id}.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"SunSpec model {model_id} is not defined by pysunspec2") from None
    points: dict[str, Point] = {}
    size = _flatten(data["group"], "", 0, points)
    return ModelDef(model_id, data["group"]["name"], points, size - 2)


def chain_layout(base: int, models: list[int]) -> list[tuple[int, int]]:
    """``[(model_id, id_address)]`` of ``models`` placed back to back after the marker at ``base``."""
    layout, addr = [], base + 2
    for mid in models:
        layout.append((mid, addr))
        addr += model_def(mid).size
    return layout


_ALIASES = {"count": "uint16", "ipaddr": "uint32"}


def point_type(t: str) -> str | None:
    """Converter type for a SunSpec point type (``None``: no numeric meaning, e.g. eui48)."""
    t = _ALIASES.get(t, t)
    return t if t in cv.WORDS or t == "string" else None


def empty_point(t: str, size: int) -> list[int]:
    """Words of a point with no value: its sentinel, or zeros for opaque types."""
    c = point_type(t)
    if c is None or cv.word_count(c, size) != size:
        return [0] * size
    return cv.to_registers(None, c, size=size)


def chain_image(base: int, layout: list[tuple[int, int]]) -> dict[tuple[str, int], int]:
    """Holding-register image of a chain: "SunS" marker at ``base``, every model's ID/L
    header and all its points without value, then the 0xFFFF end marker."""
    img: dict[tuple[str, int], int] = {}
    img[("holding", base)], img[("holding", base + 1)] = SUNS_MARKER
    for mid, addr in layout:
        m = model_def(mid)
        img[("holding", addr)] = mid
        img[("holding", addr + 1)] = m.length
        for p in m.points.values():
            if p.name in ("ID", "L"):
                continue
            for i, w in enumerate(empty_point(p.type, p.size)):
                img[("holding", addr + p.offset + i)] = w
    end = layout[-1][1] + model_def(layout[-1][0]).size if layout else base + 2
    img[("holding", end)] = END_ID
    img[("holding", end + 1)] = 0
    return img
