"""Pure converters between Python values and 16-bit Modbus register words.

Data types (SunSpec names where they exist) and their "not implemented" sentinels, which
decode to ``None``:

=========== ===== ============================ ==========================
type        words sentinel (raw)               note
=========== ===== ============================ ==========================
int16       1     0x8000
uint16      1     0xFFFF
sunssf      1     0x8000                       SunSpec scale factor (int16)
enum16      1     0xFFFF
bitfield16  1     0xFFFF
int32       2     0x80000000
uint32      2     0xFFFFFFFF
enum32      2     0xFFFFFFFF
bitfield32  2     0xFFFFFFFF
acc32       2     none (0 = "not accumulated") unsigned accumulator
int64       4     0x8000000000000000
uint64      4     0xFFFFFFFFFFFFFFFF
acc64       4     none                         unsigned accumulator
float32     2     NaN                          IEEE 754 single
string      n     all words 0x0000             ASCII, NUL padded
pad         1     none                         always 0x8000 on encode
=========== ===== ============================ ==========================

Word order of 32/64-bit types: ``"big"`` (most significant word first, SunSpec, Eastron)
or ``"little"`` (least significant word first). Bytes inside a word are always big-endian,
as Modbus prescribes.

Scaling: SunSpec ``value = raw × 10**sf`` (:func:`apply_sf`, :func:`unapply_sf`).
"""
from __future__ import annotations

import math
import struct
from collections.abc import Sequence

WordOrder = str  # "big" | "little"

#: Register words per fixed-size type.
WORDS: dict[str, int] = {
    "int16": 1, "uint16": 1, "sunssf": 1, "enum16": 1, "bitfield16": 1, "pad": 1,
    "int32": 2, "uint32": 2, "enum32": 2, "bitfield32": 2, "acc32": 2, "float32": 2,
    "int64": 4, "uint64": 4, "acc64": 4,
}

#: Raw integer sentinel meaning "not implemented" per type (float32 uses NaN).
SENTINELS: dict[str, int] = {
    "int16": 0x8000, "sunssf": 0x8000, "uint16": 0xFFFF, "enum16": 0xFFFF, "bitfield16": 0xFFFF,
    "int32": 0x80000000, "uint32": 0xFFFFFFFF, "enum32": 0xFFFFFFFF, "bitfield32": 0xFFFFFFFF,
    "int64": 0x8000000000000000, "uint64": 0xFFFFFFFFFFFFFFFF,
}

_SIGNED = {"int16", "sunssf", "int32", "int64"}
_RANGES: dict[str, tuple[int, int]] = {
    "int16": (-0x8000, 0x7FFF), "sunssf": (-10, 10), "uint16": (0, 0xFFFF),
    "enum16": (0, 0xFFFF), "bitfield16": (0, 0xFFFF), "int32": (-0x80000000, 0x7FFFFFFF),
    "uint32": (0, 0xFFFFFFFF), "enum32": (0, 0xFFFFFFFF), "bitfield32": (0, 0xFFFFFFFF),
    "acc32": (0, 0xFFFFFFFF), "int64": (-(1 << 63), (1 << 63) - 1), "uint64": (0, (1 << 64) - 1),
    "acc64": (0, (1 << 64) - 1),
}


def word_count(dtype: str, size: int | None = None) -> int:
    """Number of registers of ``dtype``; ``size`` is required for ``string``."""
    if dtype == "string":
        if not size:
            raise ValueError("string needs a size in words")
        return size
    try:
        return WORDS[dtype]
    except KeyError:
        raise ValueError(f"unknown register type {dtype!r}") from None


def value_range(dtype: str) -> tuple[int, int]:
    """Encodable integer range ``(lo, hi)`` of ``dtype``, sentinel excluded where it is an end."""
    lo, hi = _RANGES[dtype]
    s = SENTINELS.get(dtype)
    if s is None:
        return lo, hi
    if dtype in _SIGNED:
        return lo + 1, hi
    return lo, hi - 1


def _split(u: int, n: int, word_order: WordOrder) -> list[int]:
    words = [(u >> (16 * i)) & 0xFFFF for i in range(n)]  # least significant first
    return words[::-1] if word_order == "big" else words


def _join(words: Sequence[int], word_order: WordOrder) -> int:
    ordered = list(words) if word_order == "big" else list(words)[::-1]
    u = 0
    for w in ordered:
        u = (u << 16) | (w & 0xFFFF)
    return u


def to_registers(value: float | int | str | None, dtype: str, word_order: WordOrder = "big",
                 size: int | None = None) -> list[int]:
    """Encode ``value`` as register words; ``None`` encodes the type's sentinel.

    Integers are rounded to nearest; out-of-range integers raise ``OverflowError``.
    """
    n = word_count(dtype, size)
    if dtype == "pad":
        return [0x8000]
    if dtype == "string":
        raw = ("" if value is None else str(value)).encode("ascii")
        if len(raw) > 2 * n:
            raise OverflowError(f"string longer than {2 * n} bytes")
        raw = raw.ljust(2 * n, b"\0")
        return list(struct.unpack(f">{n}H", raw))
    if dtype == "float32":
        f = math.nan if value is None else float(value)
        u = struct.unpack(">I", struct.pack(">f", f))[0]
        return _split(u, 2, word_order)
    if value is None:
        if dtype not in SENTINELS:
            return [0] * n  # acc32: 0 means "not accumulated"
        u = SENTINELS[dtype]
    else:
        if isinstance(value, float) and not math.isfinite(value):
            raise OverflowError(f"cannot encode {value} as {dtype}")
        i = int(round(value))
        lo, hi = value_range(dtype)
        if not lo <= i <= hi:
            raise OverflowError(f"{value} out of range for {dtype} [{lo}, {hi}]")
        u = i & ((1 << (16 * n)) - 1)
    return _split(u, n, word_order)


def from_registers(words: Sequence[int], dtype: str, word_order: WordOrder = "big"
                   ) -> int | float | str | None:
    """Decode register words into a value; a "not implemented" sentinel gives ``None``."""
    if dtype == "string":
        raw = struct.pack(f">{len(words)}H", *(w & 0xFFFF for w in words))
        s = raw.split(b"\0", 1)[0].decode("ascii", errors="replace")
        return s or None
    n = word_count(dtype)
    if len(words) < n:
        raise ValueError(f"{dtype} needs {n} words, got {len(words)}")
    if dtype == "pad":
        return None
    u = _join(words[:n], word_order)
    if dtype == "float32":
        f = struct.unpack(">f", struct.pack(">I", u))[0]
        return None if math.isnan(f) else f
    if SENTINELS.get(dtype) == u:
        return None
    if dtype in _SIGNED:
        bits = 16 * n
        if u >= 1 << (bits - 1):
            u -= 1 << bits
    return u


def apply_sf(raw: int | float | None, sf: int | None) -> float | None:
    """SunSpec scaling: ``raw × 10**sf``; ``None`` if either is not implemented."""
    if raw is None or sf is None:
        return None
    # dividing by an exact power of ten rounds better than multiplying by 10.0**-n
    return raw / 10 ** -sf if sf < 0 else float(raw * 10 ** sf)


def unapply_sf(value: float, sf: int) -> int:
    """Inverse of :func:`apply_sf`: the raw integer closest to ``value / 10**sf``."""
    return int(round(value / 10.0 ** sf)) if sf > 0 else int(round(value * 10 ** -sf))
