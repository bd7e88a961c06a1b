"""Compose one battery's setpoint from layers in a fixed priority.

Priority (highest first): reserve state machine > grid-connection limit > operator override >
VPP dispatch > plan > fallback rule. Each layer is a :class:`Proposal` that may narrow the power window
``[min_w, max_w]`` [W] and/or propose a setpoint [W] (> 0 discharge). Layers are applied from
the top: a window narrows everything below it; the first layer that proposes a setpoint
decides it, clipped to the window of the layers above it (and its own). A lower layer can
never widen a higher layer's window; a window that would make the intersection empty is
ignored with a reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

PRIORITY: tuple[str, ...] = ("reserve", "grid", "override", "dispatch", "plan", "fallback")


@dataclass(frozen=True)
class Proposal:
    """One layer's say for one device in one control step."""

    source: str
    setpoint_w: float | None = None
    min_w: float = -math.inf
    max_w: float = math.inf
    reason: str = ""


@dataclass(frozen=True)
class Decision:
    """The composed command for one device: ``setpoint_w`` [W] (> 0 discharge), the layer it
    came from, the final window and the reasons of every layer that acted."""

    device: str
    setpoint_w: float
    source: str
    reasons: tuple[str, ...]
    min_w: float
    max_w: float


@dataclass
class Override:
    """Operator override for one device until ``expires_at`` (UTC): a setpoint and/or window."""

    device: str
    expires_at: datetime
    setpoint_w: float | None = None
    min_w: float = -math.inf
    max_w: float = math.inf
    reason: str = "operator override"
    #: the expiry on the controller clock's monotonic seconds, stamped by the controller when it
    #: first sees the override, so a wall-clock step neither shortens nor extends it
    expires_mono: float | None = None

    def active(self, now: datetime, mono: float | None = None) -> bool:
        if self.expires_mono is not None and mono is not None:
            return mono < self.expires_mono
        return now < self.expires_at

    def proposal(self, now: datetime, mono: float | None = None) -> Proposal | None:
        if not self.active(now, mono):
            return None
        return Proposal("override", self.setpoint_w, self.min_w, self.max_w,
                        f"{self.reason} (until {self.expires_at.isoformat()})")


def compose(device: str, rated_min_w: float, rated_max_w: float, layers: dict[str, Proposal | None]) -> Decision:
    """Compose ``layers`` (keyed by :data:`PRIORITY` names; missing/None = silent) within the
    rated window ``[rated_min_w, rated_max_w]`` [W]. With no proposal the battery idles (0 W,
    clipped to the window, so a force-charge still charges)."""
    unknown = set(layers) - set(PRIORITY)
    if unknown:
        raise ValueError(f"unknown layers: {sorted(unknown)}")
    lo, hi = rated_min_w, rated_max_w
    reasons: list[str] = []
    for name in PRIORITY:
        p = layers.get(name)
        if p is None:
            continue
        nlo, nhi = max(lo, p.min_w), min(hi, p.max_w)
        if nlo > nhi:
            reasons.append(f"{name}: window [{p.min_w:.0f}, {p.max_w:.0f}] W conflicts with "
                           f"[{lo:.0f}, {hi:.0f}] W from above, ignored")
        else:
            lo, hi = nlo, nhi
        if p.setpoint_w is not None and math.isfinite(p.setpoint_w):
            sp = min(max(p.setpoint_w, lo), hi)
            if p.reason:
                reasons.append(f"{name}: {p.reason}")
            if sp != p.setpoint_w:
                reasons.append(f"{name}: {p.setpoint_w:.0f} W clipped to {sp:.0f} W by [{lo:.0f}, {hi:.0f}] W")
            return Decision(device, sp, name, tuple(reasons), lo, hi)
        if p.reason:
            reasons.append(f"{name}: {p.reason}")
    sp = min(max(0.0, lo), hi)
    return Decision(device, sp, "idle", tuple(reasons), lo, hi)
