"""What each car's driver needs: energy [Wh] and departure, per charger, for the car plugged in now.

Set by the operator or by the driver through the session's own link (the API), or reported by
the station (OCPP 2.0.1 ``NotifyEVChargingNeeds``: the car's ISO 15118 request). A need set by
a person wins over the station's report for the same plug-in. Without any, the fixed guess of
:class:`vpp.control.ev.EvPolicy` applies. Needs belong to one plug-in: they are set only
while a car is connected and forgotten when it leaves (:meth:`EvNeeds.car_left`).

A target state of charge becomes energy: ``(target_soc − soc) × capacity_wh`` [Wh].
Times are UTC-aware.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Source = Literal["operator", "driver", "station"]
#: Longest departure ahead the service accepts [s] (a week).
MAX_AHEAD_S = 7 * 86400.0
#: Largest energy one session may ask for [Wh].
MAX_ENERGY_WH = 200_000.0


class NeedsError(ValueError):
    """A need that cannot be taken (names the field)."""


@dataclass(frozen=True)
class EvNeed:
    """Energy to deliver in this plug-in ``energy_wh`` [Wh] (None: the default guess) by
    ``departure`` (None: the default departure), who said so and when."""

    charger_id: str
    energy_wh: float | None
    departure: datetime | None
    source: Source
    set_at: datetime


def energy_from_soc(target_soc: float, soc: float, capacity_wh: float) -> float:
    """Energy [Wh] from ``soc`` to ``target_soc`` [fractions] of a ``capacity_wh`` [Wh] battery."""
    return max(target_soc - soc, 0.0) * capacity_wh


class EvNeeds:
    """Needs per charger and the drivers' session links (tokens)."""

    def __init__(self) -> None:
        self._needs: dict[str, EvNeed] = {}
        self._tokens: dict[str, str] = {}  # token -> charger id

    def get(self, charger_id: str) -> EvNeed | None:
        return self._needs.get(charger_id)

    def all(self) -> dict[str, EvNeed]:
        return dict(self._needs)

    def set(self, charger_id: str, now: datetime, source: Source, energy_wh: float | None = None,
            departure: datetime | None = None) -> EvNeed:
        """Record a need (validated: energy 0 < e ≤ 200 kWh, departure after ``now`` and
        within a week); a person's need is kept over a later station report."""
        if energy_wh is not None and not (0.0 < energy_wh <= MAX_ENERGY_WH):
            raise NeedsError(f"energy_wh must be in (0, {MAX_ENERGY_WH:.0f}] Wh, got {energy_wh}")
        if departure is not None:
            if departure.tzinfo is None:
                raise NeedsError("departure must carry a time zone offset")
            ahead = (departure - now).total_seconds()
            if not (0 < ahead <= MAX_AHEAD_S):
                raise NeedsError("departure must be in the future and within 7 days")
        old = self._needs.get(charger_id)
        if source == "station" and old is not None and old.source != "station":
            return old
        need = EvNeed(charger_id, energy_wh if energy_wh is not None else (old.energy_wh if old else None),
                      departure if departure is not None else (old.departure if old else None), source, now)
        self._needs[charger_id] = need
        return need

    def set_from_station(self, charger_id: str, needs: dict[str, Any], now: datetime) -> EvNeed | None:
        """A station's report (``energy_wh``, ``departure``); invalid values are ignored."""
        try:
            return self.set(charger_id, now, "station", needs.get("energy_wh"), needs.get("departure"))
        except NeedsError:
            return None

    def car_left(self, charger_id: str) -> None:
        """The car left: its need and link end."""
        self._needs.pop(charger_id, None)
        for t in [t for t, c in self._tokens.items() if c == charger_id]:
            del self._tokens[t]

    def link(self, charger_id: str) -> str:
        """The driver's token for the car on ``charger_id`` now (the same until it leaves)."""
        for t, c in self._tokens.items():
            if c == charger_id:
                return t
        t = secrets.token_urlsafe(24)
        self._tokens[t] = charger_id
        return t

    def charger_of(self, token: str) -> str | None:
        for t, c in self._tokens.items():
            if secrets.compare_digest(t, token):
                return c
        return None
