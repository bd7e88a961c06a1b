"""Register-map codec: engineering values <-> register images, using :mod:`drivers.converters`.

Pure functions over a :class:`drivers.registermap.RegisterMap` (which also offers them as
methods). Decoded value = ``lookup[raw]`` or ``raw × 10**sf × scale`` (× ``ref/100`` for
``percent_of``); sentinels ("not implemented") decode to ``None``. Encoding inverts this;
SunSpec scale factors are chosen per image (the map's preferred SF, raised until every
value that uses it fits its register).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from drivers import converters as cv
from drivers.mapschema import Image, Register
from drivers.sunspec_models import chain_image

if TYPE_CHECKING:
    from drivers.registermap import RegisterMap


# ---------------------------------------------------------------------- encoding
def _sf_for_encode(m: RegisterMap, values: Mapping[str, Any]) -> dict[str, int]:
    chosen: dict[str, int] = {}
    users: dict[str, list[tuple[Register, float]]] = {}
    for r in m.registers.values():
        if isinstance(r.sf, str):
            v = _raw_before_sf(m, r, values)
            if v is not None:
                users.setdefault(r.sf, []).append((r, v))
    for name, reg in m.registers.items():
        if reg.type != "sunssf":
            continue
        sf = m.sf_preferred.get(name, 0)
        for r, v in users.get(name, []):
            lo, hi = cv.value_range(r.type)
            while sf < 10 and not lo <= round(v / 10.0 ** sf) <= hi:
                sf += 1
        chosen[name] = sf
    return chosen


def _raw_before_sf(m: RegisterMap, r: Register, values: Mapping[str, Any]) -> float | None:
    """Engineering value -> number before SunSpec scaling (undo percent_of, scale)."""
    v = values.get(r.name, r.default)
    if v is None or isinstance(v, str):
        return None
    v = float(v)
    if not math.isfinite(v):
        return None
    if r.percent_of is not None:
        ref = values.get(r.percent_of)
        if ref is None:
            ref = m.registers[r.percent_of].default if r.percent_of in m.registers else None
        if not ref:
            return None
        v = v / float(ref) * 100.0
    return v / r.scale


def _encode_one(m: RegisterMap, r: Register, values: Mapping[str, Any], sfs: Mapping[str, int]
                ) -> list[int]:
    v = values.get(r.name, r.default)
    if r.type == "string":
        return cv.to_registers(v, "string", size=r.size)
    if v is not None and r.lookup is not None:
        inverse = {val: raw for raw, val in r.lookup.items()}
        if float(v) not in inverse:
            raise ValueError(f"{r.name}: {v} is not in its lookup table")
        return cv.to_registers(inverse[float(v)], r.type, r.word_order, r.size)
    raw = _raw_before_sf(m, r, values)
    if raw is None:
        return cv.to_registers(None, r.type, r.word_order, r.size)
    sf = sfs[r.sf] if isinstance(r.sf, str) else (r.sf or 0)
    if r.type == "float32":
        return cv.to_registers(raw * 10.0 ** -sf, r.type, r.word_order)
    return cv.to_registers(cv.unapply_sf(raw, sf), r.type, r.word_order, r.size)


def encode(m: RegisterMap, values: Mapping[str, float | str | None]) -> Image:
    """Full register image ``{(table, address): word}`` for ``values`` (engineering units).

    SunSpec maps produce the whole chain: "SunS" marker, every model's ID/L header and
    all its points (sentinel where no value is given), the scale-factor registers and
    the 0xFFFF end marker. Plain maps produce every declared register (sentinel, or
    ``default``, where no value is given). Raises ``OverflowError`` for a value that
    its register cannot hold.
    """
    img: Image = chain_image(m.sunspec_base, m.layout) if m.is_sunspec else {}
    sfs = _sf_for_encode(m, values)
    for r in m.registers.values():
        if r.type == "sunssf":
            words = cv.to_registers(sfs[r.name], "sunssf")
        else:
            words = _encode_one(m, r, values, sfs)
        for a, w in zip(r.span, words):
            img[(r.table, a)] = w
    return img


def encode_write(m: RegisterMap, values: Mapping[str, float], image: Mapping[tuple[str, int], int],
                 context: Mapping[str, Any] | None = None) -> list[tuple[str, int, list[int]]]:
    """Write requests ``[(table, address, words)]`` setting writable registers to ``values``.

    ``image`` is the device's current image (for its scale factors); ``context`` holds
    decoded values needed by ``percent_of`` registers (e.g. the rating).
    """
    ctx = dict(context or {})
    ctx.update(values)
    sfs = {n: _as_int(cv.from_registers([image.get((r.table, r.address), 0x8000)], "sunssf"))
           for n, r in m.registers.items() if r.type == "sunssf"}
    out = []
    for name in values:
        r = m.registers.get(name)
        if r is None or r.access != "rw":
            raise ValueError(f"{m.name}: {name!r} is not a writable register")
        if isinstance(r.sf, str) and sfs.get(r.sf) is None:
            raise ValueError(f"{m.name}: scale factor {r.sf} of {name} is unknown")
        out.append((r.table, r.address, _encode_one(m, r, ctx, sfs)))
    return out


# ---------------------------------------------------------------------- decoding
def _decode_reg(m: RegisterMap, r: Register, get, done: dict[str, Any]) -> Any:
    words = [get(r.table, a) for a in r.span]
    if any(w is None for w in words):
        return None
    raw = cv.from_registers(words, r.type, r.word_order)
    if raw is None or r.type == "string":
        return raw
    if r.lookup is not None:
        return r.lookup.get(raw)
    if isinstance(r.sf, str):
        s = m.registers[r.sf]
        sw = get(s.table, s.address)
        sf = None if sw is None else cv.from_registers([sw], "sunssf")
        value = cv.apply_sf(raw, sf)
    else:
        value = cv.apply_sf(raw, r.sf or 0)
    if value is None:
        return None
    if r.scale != 1.0:
        value *= r.scale
    if r.percent_of is not None:
        ref = done.get(r.percent_of)
        value = None if ref is None else value / 100.0 * ref
    return value


def decode(m: RegisterMap, image: Mapping[tuple[str, int], int]) -> dict[str, float | str | None]:
    """Decode every named register from ``image``; absent or sentinel values give ``None``."""
    get = lambda t, a: image.get((t, a))  # noqa: E731
    out: dict[str, Any] = {}
    later = []
    for r in m.registers.values():
        if r.hidden:
            continue
        if r.percent_of is not None:
            later.append(r)
            continue
        out[r.name] = _decode_reg(m, r, get, out)
    for r in later:
        out[r.name] = _decode_reg(m, r, get, out)
    for v in m.virtuals.values():
        src = out.get(v.source)
        out[v.name] = None if src is None else v.lookup.get(int(src))
    return out


def decode_numeric(m: RegisterMap, image: Mapping[tuple[str, int], int]) -> dict[str, float]:
    """Like :func:`decode` but only numeric values, ``None`` and strings dropped.

    Same results as :func:`decode`; a precompiled plan with inline 16-bit fast paths
    keeps it cheap enough to run on every poll of thousands of devices.
    """
    plan = m._plan
    if plan is None:
        plan = m._plan = _compile(m)
    out: dict[str, float] = {}
    g = image.get
    for name, kind, keys, typ, order, sf, scale, lookup in plan[0]:
        if kind == 1:  # single 16-bit word
            w = g(keys)
            if w is None:
                continue
            if typ == 0:   # unsigned with 0xFFFF sentinel
                if w == 0xFFFF:
                    continue
                raw = w
            elif typ == 1:  # signed with 0x8000 sentinel
                if w == 0x8000:
                    continue
                raw = w - 0x10000 if w & 0x8000 else w
            else:
                raw = w
        elif kind == 2:  # 32-bit integer: keys are (high, low) word addresses
            hi, lo = g(keys[0]), g(keys[1])
            if hi is None or lo is None:
                continue
            raw = (hi << 16) | lo
            if raw == typ:  # the type's sentinel (-1 when it has none)
                continue
            if order and raw & 0x80000000:  # ``order`` flags a signed type here
                raw -= 0x100000000
        else:
            words = [g(k) for k in keys]
            if None in words:
                continue
            raw = cv.from_registers(words, typ, order)
            if raw is None:
                continue
        if lookup is not None:
            v = lookup.get(raw)
            if v is not None:
                out[name] = v
            continue
        if sf.__class__ is tuple:
            e = g(sf)
            if e is None or e == 0x8000:
                continue
            e = e - 0x10000 if e & 0x8000 else e
        else:
            e = sf
        v = raw / 10 ** -e if e < 0 else raw * 10 ** e
        out[name] = float(v * scale)
    for r in plan[1]:
        if r.percent_of in out:
            v = _decode_reg(m, r, lambda t, a: g((t, a)), out)
            if v is not None:
                out[r.name] = float(v)
    for v in m.virtuals.values():
        src = out.get(v.source)
        if src is not None and int(src) in v.lookup:
            out[v.name] = float(v.lookup[int(src)])
    return out


def _compile(m: RegisterMap) -> tuple[list[tuple], list[Register]]:
    simple, later = [], []
    for r in m.registers.values():
        if r.hidden or r.type in ("string", "pad"):
            continue
        if r.percent_of is not None:
            later.append(r)
            continue
        sf = (m.registers[r.sf].table, m.registers[r.sf].address) \
            if isinstance(r.sf, str) else (r.sf or 0)
        lookup = dict(r.lookup) if r.lookup is not None else None
        if r.size == 1:
            typ = {"uint16": 0, "enum16": 0, "bitfield16": 0, "int16": 1, "sunssf": 1}.get(r.type, 2)
            simple.append((r.name, 1, (r.table, r.address), typ, r.word_order, sf, r.scale, lookup))
        elif r.type in ("int32", "uint32", "acc32", "enum32", "bitfield32"):
            hi, lo = (r.address, r.address + 1) if r.word_order == "big" \
                else (r.address + 1, r.address)
            simple.append((r.name, 2, ((r.table, hi), (r.table, lo)),
                           cv.SENTINELS.get(r.type, -1), r.type == "int32", sf, r.scale, lookup))
        else:
            keys = tuple((r.table, a) for a in r.span)
            simple.append((r.name, 3, keys, r.type, r.word_order, sf, r.scale, lookup))
    return simple, later


def decode_write(m: RegisterMap, table: str, address: int, words: list[int],
                 image: Mapping[tuple[str, int], int] | None = None) -> dict[str, float]:
    """Named values set by a client write of ``words`` at ``address`` in ``table``.

    Only registers lying wholly inside the write are returned. Scale factors and
    ``percent_of`` references come from ``image`` (the device's image before the write),
    else from the map's preferred scale factors.
    """
    base = dict(image) if image is not None else encode(m, {})
    written = {(table, address + i): w & 0xFFFF for i, w in enumerate(words)}
    merged = {**base, **written}
    full = decode(m, merged)
    end = address + len(words)
    return {r.name: full[r.name] for r in m.registers.values()
            if not r.hidden and r.table == table and r.address >= address
            and r.address + r.size <= end and full.get(r.name) is not None}


def _as_int(x: Any) -> int | None:
    return None if x is None else int(x)
