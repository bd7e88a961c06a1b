"""Alarms: named conditions raised and cleared with a reason and timestamps.

Raising an active alarm again only refreshes its reason (no duplicate); clearing records when
and why it ended. Listeners (logging, API, storage) get every raise/clear.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

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

    def is_active(self, key: str) -> bool:
        return key in self._active

    def get(self, key: str) -> Alarm | None:
        return self._active.get(key)

    def active(self) -> list[Alarm]:
        return sorted(self._active.values(), key=lambda a: a.raised_at)

    def history(self) -> list[Alarm]:
        return list(self._history)
