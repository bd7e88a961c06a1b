"""Alarms: named conditions raised and cleared with a reason and timestamps.

Raising an active alarm again only refreshes its reason (no duplicate); clearing records when
and why it ended. Listeners (logging, API, storage) get every raise/clear.

Keys in use include ``plan``, ``fallback``, ``inputs:<id>``, ``grid``, ``write:<id>`` and
``award`` (an accepted VPP award the current plan cannot fully keep deliverable; its reason,
:func:`award_at_risk_reason`, names the slots and the kW short).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class Alarm:
    key: str
    reason: str
    severity: Severity
    raised_at: datetime
    updated_at: datetime
    cleared_at: datetime | None = None
    clear_reason: str = ""

    @property
    def active(self) -> bool:
        return self.cleared_at is None


@dataclass(frozen=True)
class AlarmChange:
    """A raise (``raised`` True, with ``severity``) or a clear of alarm ``key`` that a pure
    control function asks for; the loop applies them in order (:meth:`Alarms.apply`)."""

    key: str
    reason: str
    raised: bool = True
    severity: Severity = "warning"


def raise_alarm(key: str, reason: str, severity: Severity = "warning") -> AlarmChange:
    return AlarmChange(key, reason, True, severity)


def clear_alarm(key: str, reason: str = "") -> AlarmChange:
    return AlarmChange(key, reason, False)


class Alarms:
    """Registry of active alarms plus a bounded history of cleared ones."""

    def __init__(self, history_max: int = 500) -> None:
        self._active: dict[str, Alarm] = {}
        self._history: list[Alarm] = []
        self._history_max = history_max
        self._listeners: list[Callable[[Alarm], None]] = []

    def subscribe(self, fn: Callable[[Alarm], None]) -> None:
        self._listeners.append(fn)

    def _emit(self, a: Alarm) -> None:
        for fn in self._listeners:
            fn(a)

    def raise_(self, key: str, reason: str, now: datetime, severity: Severity = "warning") -> Alarm:
        """Raise (or refresh) alarm ``key``; returns it. Logs only when newly raised or the
        reason changed."""
        old = self._active.get(key)
        if old is not None:
            if old.reason == reason and old.severity == severity:
                return old
            a = replace(old, reason=reason, severity=severity, updated_at=now)
        else:
            a = Alarm(key, reason, severity, now, now)
        self._active[key] = a
        log.log(logging.CRITICAL if severity == "critical" else logging.WARNING, "alarm %s: %s", key, reason)
        self._emit(a)
        return a

    def clear(self, key: str, now: datetime, reason: str = "") -> Alarm | None:
        """Clear alarm ``key`` if active; returns the cleared alarm (None if it was not active)."""
        old = self._active.pop(key, None)
        if old is None:
            return None
        a = replace(old, cleared_at=now, clear_reason=reason, updated_at=now)
        self._history.append(a)
        del self._history[:-self._history_max]
        log.info("alarm %s cleared: %s", key, reason)
        self._emit(a)
        return a

    def apply(self, changes: Iterable[AlarmChange], now: datetime) -> None:
        """Raise or clear as each of ``changes`` says, in order."""
        for c in changes:
            if c.raised:
                self.raise_(c.key, c.reason, now, c.severity)
            else:
                self.clear(c.key, now, c.reason)

    def is_active(self, key: str) -> bool:
        return key in self._active

    def get(self, key: str) -> Alarm | None:
        return self._active.get(key)

    def active(self) -> list[Alarm]:
        return sorted(self._active.values(), key=lambda a: a.raised_at)

    def history(self) -> list[Alarm]:
        return list(self._history)


AWARD_KEY = "award"


def award_at_risk_reason(risk: list[tuple[int, float, float]], start: datetime, slot_s: int,
                         timezone: str = "UTC", max_slots: int = 6) -> str:
    """Reason text of the ``award`` alarm: ``risk`` is ``[(slot, up short [W], down short
    [W])]`` (:meth:`optimizer.Schedule.award_at_risk`) of a plan starting at ``start`` with
    slots of ``slot_s`` [s]; slot start times are shown in the site's ``timezone``. Names the
    first ``max_slots`` slots and the largest shortfall per side in kW."""
    tz = ZoneInfo(timezone)
    parts = []
    for t, up, dn in risk[:max_slots]:
        at = (start + timedelta(seconds=slot_s * t)).astimezone(tz).strftime("%m-%d %H:%M")
        sides = ", ".join(f"{name} {w / 1000:.2f} kW short" for name, w in (("up", up), ("down", dn)) if w > 0)
        parts.append(f"slot {t} ({at}) {sides}")
    more = f" and {len(risk) - max_slots} more slots" if len(risk) > max_slots else ""
    worst_up = max((r[1] for r in risk), default=0.0)
    worst_dn = max((r[2] for r in risk), default=0.0)
    return (f"award at risk: the plan cannot keep the accepted VPP award deliverable in {len(risk)} slot{'s' if len(risk) != 1 else ''} "
            f"(up to {worst_up / 1000:.2f} kW up, {worst_dn / 1000:.2f} kW down short; reserve floor held): "
            + "; ".join(parts) + more)
