"""Operator actions on the running controller: alarm acknowledgements and battery overrides.

Every action is audited in the ledger (``alarm_ack``, ``battery_override``). Acknowledgements
survive a restart: :meth:`OperatorActions.restore_acks` replays the ledger's ``alarm_ack`` /
``alarm_ack_end`` records, and from then on the clearing of an acknowledged alarm is recorded
(``alarm_ack_end``: an alarm raised again after it cleared needs a new acknowledgement).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from vpp.config import SiteConfig
from vpp.control.alarms import Alarm, Alarms
from vpp.control.bounds import Override
from vpp.errors import ServiceError
from vpp.timefmt import iso

log = logging.getLogger(__name__)

#: An override may last at most this long.
MAX_OVERRIDE = timedelta(hours=24)


class AuditLedger(Protocol):
    def audit(self, actor: str, action: str, **detail: Any) -> Any: ...

    def query(self, *args: Any, **kw: Any) -> list[Any]: ...


@dataclass
class Ack:
    raised_at: datetime
    by: str
    at: datetime
    #: restored from the ledger at start: covers the alarm's first raise after the restart
    restored: bool = False


class OperatorActions:
    """Acknowledgements and overrides on ``alarms`` and ``overrides`` (the controller's).

    Parameters
    ----------
    config : SiteConfig
    alarms : Alarms
    overrides : dict
        The controller's ``overrides`` (device id -> :class:`~vpp.control.bounds.Override`).
    now : callable
        The runtime's clock (UTC).
    ledger : AuditLedger, optional
        Audit trail (set :attr:`ledger` later when it is opened after).
    """

    def __init__(self, config: SiteConfig, alarms: Alarms, overrides: dict[str, Override],
                 now: Callable[[], datetime], ledger: AuditLedger | None = None) -> None:
        self.config, self.alarms, self.overrides, self.now = config, alarms, overrides, now
        self.ledger = ledger
        self.acks: dict[str, Ack] = {}

    def audit(self, actor: str, action: str, **detail: Any) -> None:
        """Record an operator (or system) action in the ledger and the log."""
        if self.ledger is not None:
            self.ledger.audit(actor, action, **detail)
        log.warning("operator %s: %s %s", actor, action, detail)

    # ------------------------------------------------------------------ acknowledgements
    def restore_acks(self) -> None:
        """Replay the ledger's acknowledgements and record from now on when an acknowledged
        alarm clears."""
        if self.ledger is None:
            return
        for r in self.ledger.query(kinds=["audit"]):
            key, action = r.payload.get("alarm"), r.payload.get("action")
            if action == "alarm_ack" and key:
                self.acks[key] = Ack(datetime.fromisoformat(r.payload["raised_at"]), r.actor, r.ts, restored=True)
            elif action == "alarm_ack_end" and key:
                self.acks.pop(key, None)

        def on_alarm(a: Alarm) -> None:
            if a.active:
                self.acked(a)  # binds a restored acknowledgement to this raise
            elif self.acked(a):
                del self.acks[a.key]
                self.audit("system", "alarm_ack_end", alarm=a.key, cleared_at=iso(a.cleared_at))

        for a in self.alarms.active():
            on_alarm(a)
        self.alarms.subscribe(on_alarm)

    def acked(self, a: Alarm) -> bool:
        """Whether this raise of ``a`` is acknowledged."""
        ack = self.acks.get(a.key)
        if ack is not None and ack.restored and a.active and ack.raised_at != a.raised_at:
            # the process restarted while the alarm was acknowledged and active: this raise is it
            ack = self.acks[a.key] = Ack(a.raised_at, ack.by, ack.at)
        return ack is not None and ack.raised_at == a.raised_at

    def ack_of(self, a: Alarm) -> Ack | None:
        """The acknowledgement of this raise of ``a``, if any."""
        return self.acks.get(a.key) if self.acked(a) else None

    def ack(self, alarm_id: str, actor: str) -> Ack:
        """Acknowledge the active alarm ``alarm_id`` (404 if not active)."""
        a = self.alarms.get(alarm_id)
        if a is None:
            raise ServiceError(f"no active alarm {alarm_id!r}", 404)
        ack = self.acks[alarm_id] = Ack(a.raised_at, actor, self.now())
        self.audit(actor, "alarm_ack", alarm=alarm_id, reason=a.reason, raised_at=iso(a.raised_at))
        return ack

    # ------------------------------------------------------------------ overrides
    def override(self, actor: str, device: str, setpoint_kw: float, expires_at: datetime,
                 reason: str = "") -> dict[str, Any]:
        """Manual battery setpoint [kW] (> 0 discharge) until ``expires_at`` (required, in
        the future, at most 24 h ahead). The reserve state machine still has the last word."""
        now = self.now()
        ids = [b.id for b in self.config.devices_of("battery")]
        if device not in ids:
            raise ServiceError(f"unknown battery {device!r}; batteries: {', '.join(ids) or 'none'}", 404)
        r = self.config.device(device).ratings
        if not math.isfinite(setpoint_kw) or not -r.max_charge_w <= setpoint_kw * 1000 <= r.max_discharge_w:
            raise ServiceError(f"setpoint_kw must be within -{r.max_charge_w / 1000:g} … "
                               f"{r.max_discharge_w / 1000:g} kW for {device}, got {setpoint_kw}")
        if expires_at.tzinfo is None:
            raise ServiceError("expires_at needs a time zone (e.g. 2026-11-23T18:00:00+09:00)")
        if expires_at <= now:
            raise ServiceError("expires_at must be in the future")
        if expires_at > now + MAX_OVERRIDE:
            raise ServiceError("expires_at must be at most 24 h ahead")
        ov = Override(device, expires_at.astimezone(timezone.utc), setpoint_w=setpoint_kw * 1000,
                      reason=f"operator {actor}" + (f": {reason}" if reason else ""))
        self.overrides[device] = ov
        self.audit(actor, "battery_override", device=device, setpoint_kw=setpoint_kw,
                   expires_at=iso(ov.expires_at), reason=reason)
        return {"device": device, "setpoint_kw": setpoint_kw, "expires_at": iso(ov.expires_at)}
