"""SunSpec model definitions, read at run time from the JSON files pysunspec2 ships.

pysunspec2 (Apache-2.0) carries the official SunSpec model JSON (``model_<id>.json``); we
read them from the installed package instead of retyping register tables.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

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
