"""Plausibility checks applied to every snapshot before it is stored (pure functions).

A value that is not a real number, is non-finite, or is outside its plausible range (the
field table :mod:`drivers.fields`) is dropped from the snapshot, which is then marked
:attr:`Quality.BAD` with the reason.
"""
from __future__ import annotations

import math
from numbers import Real

from drivers.fields import UNLISTED_RANGE, plausible_ranges
from drivers.protocols import Quality, Snapshot

#: Plausibility limits per field [SI units], from the drivers' field table; a field not
#: listed must lie within ``UNLISTED_RANGE`` (``abs(v) <= 1e15``).
LIMITS: dict[str, tuple[float, float]] = plausible_ranges()
_DEFAULT = UNLISTED_RANGE
_RESERVED = frozenset({"quality", "reason", "time", "site", "device"})


def _problem(name: object, v: object) -> str | None:
    if not isinstance(name, str) or not name or name in _RESERVED or not name.replace("_", "").isalnum():
        return f"bad field name {name!r}"
    if isinstance(v, bool) or not isinstance(v, Real):
        return f"{name}={v!r} is not a number"
    f = float(v)
    if not math.isfinite(f):
        return f"{name}={f} is not finite"
    lo, hi = LIMITS.get(name, _DEFAULT)
    if not lo <= f <= hi:
        return f"{name}={f:g} outside [{lo:g}, {hi:g}]"
    return None


def sanitize(s: Snapshot) -> tuple[Snapshot, list[str]]:
    """Return ``s`` with implausible values removed (marked BAD) and the list of reasons.

    The fast path (all values plain finite floats within limits) returns ``s`` itself and
    ``[]``. Integers are converted to floats so every field keeps one type in the store.
    """
    for k, v in s.values.items():
        if type(v) is not float or v - v != 0.0 or k in _RESERVED:
            break
        lo, hi = LIMITS.get(k, _DEFAULT)
        if not lo <= v <= hi:
            break
    else:
        return s, []
    values: dict[str, float] = {}
    reasons: list[str] = []
    for k, v in s.values.items():
        why = _problem(k, v)
        if why:
            reasons.append(why)
        else:
            values[k] = float(v)
    quality, reason = s.quality, s.reason
    if reasons:
        quality = Quality.BAD if s.quality == Quality.GOOD else s.quality
        reason = "; ".join(([s.reason] if s.reason else []) + reasons)
    return Snapshot(s.device, s.kind, s.ts, values, quality, reason), reasons
