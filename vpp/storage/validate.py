"""Plausibility checks applied to every snapshot before it is stored (pure functions).

A value that is not a real number, is non-finite, or is outside the physical limits below is
dropped from the snapshot, which is then marked :attr:`Quality.BAD` with the reason.
"""
from __future__ import annotations

import math
from numbers import Real

from drivers.protocols import Quality, Snapshot

#: Physical limits per field [SI units]; a field not listed must satisfy ``abs(v) <= 1e15``.
LIMITS: dict[str, tuple[float, float]] = {
    "soc": (0.0, 1.0),                        # fraction; 2.5 (250 %) is a unit mistake
    "power_w": (-1e8, 1e8),                   # 100 MW: far above any device of a town
    "setpoint_w": (-1e8, 1e8),
    "power_limit_w": (0.0, 1e8),
    "capacity_wh": (0.0, 1e9),
    "energy_wh": (0.0, 1e13),
    "charge_energy_wh": (0.0, 1e13),
    "discharge_energy_wh": (0.0, 1e13),
    "import_energy_wh": (0.0, 1e13),
    "export_energy_wh": (0.0, 1e13),
    "session_energy_wh": (0.0, 1e9),
    "voltage_v": (0.0, 2000.0),
    "frequency_hz": (0.0, 100.0),
    "state": (1.0, 6.0),
    "plugged": (0.0, 1.0),
    "current_limit_a": (0.0, 1000.0),
}
_DEFAULT = (-1e15, 1e15)
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
