"""The reserve in force: the operator's floor, storm mode and who set it, persisted in the ledger.

The site config's ``reserve`` section is the frozen default and is never changed at run time.
What an operator (``PUT /reserve``) or the JMA watch changes lives in a :class:`ReservePolicy`:
the floor in force [%] and storm mode (the controller's :class:`~vpp.control.reserve.StormMode`
object, shared), each change a ``reserve`` ``policy_change`` ledger record (``old`` / ``new``
as :meth:`ReservePolicy.state`). The controller reads the floor through
:meth:`ReservePolicy.reserve` (the config's section with the floor in force), so
:func:`vpp.control.reserve.base_floor` stays the one formula.

Across restarts: before the first plan :meth:`ReservePolicy.restore` replays the newest
``reserve`` record (operator or JMA watch), audited ``reserve_restored``; the floor never comes
back below the config file's own (an engineer may have raised it while the service was down).
A storm comes back with its target, deadline, reason, activation time (the ramp continues where
it was) and who set it; a deadline that passed while the process was down is kept as it is
(storm mode holds the target until switched off). A restored JMA storm stays the watch's.
"""
from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from vpp.config import Reserve
from vpp.control.alarms import Alarms
from vpp.control.reserve import StormMode
from vpp.errors import ServiceError
from vpp.timefmt import iso

log = logging.getLogger(__name__)


class PolicyLedger(Protocol):
    """What the policy needs of the ledger (:class:`vpp.market.ledger.Ledger`)."""

    def policy_change(self, actor: str, policy: str, old: Any, new: Any, reason: str = "") -> Any: ...

    def audit(self, actor: str, action: str, **detail: Any) -> Any: ...

    def query(self, *args: Any, **kw: Any) -> list[Any]: ...


def restored_policy(recs: list[Any], default_target_pct: float) -> dict[str, Any]:
    """The reserve policy in force after the ``reserve`` ``policy_change`` records ``recs``
    (ledger order): ``floor_pct`` [%], ``storm`` (bool) and, when on, ``target`` [fraction],
    ``deadline`` and ``activated_at`` (tz-aware UTC), ``reason`` and ``set_by`` (actor).

    The newest record's ``new`` state is the policy. Records written before the storm's
    reason, activation and actor were recorded fall back to what
    :meth:`ReservePolicy.set_reserve` and the JMA watch would have set: the reason, time and
    actor of the record that switched the storm on (or moved its deadline or target), an
    empty reason being ``operator <actor>``. Raises ``KeyError`` / ``TypeError`` /
    ``ValueError`` on a record that cannot be read (an out-of-range floor or target, a
    deadline without time zone)."""
    set_by = set_at = set_reason = None
    for r in recs:
        o, n = r.payload.get("old") or {}, r.payload.get("new") or {}
        if n.get("storm") and (not o.get("storm") or o.get("storm_deadline") != n.get("storm_deadline")
                               or o.get("storm_target_pct") != n.get("storm_target_pct")):
            set_by, set_at, set_reason = r.actor, r.ts, r.payload.get("reason")
    last = recs[-1]
    n = last.payload["new"]
    floor = float(n["floor_pct"])
    if not (math.isfinite(floor) and 0 <= floor <= 100):
        raise ValueError(f"floor_pct {floor} outside 0–100 %")
    out: dict[str, Any] = {"floor_pct": floor, "storm": bool(n.get("storm"))}
    if not out["storm"]:
        return out
    target = float(n.get("storm_target_pct", default_target_pct))
    if not (math.isfinite(target) and 0 <= target <= 100):
        raise ValueError(f"storm_target_pct {target} outside 0–100 %")
    deadline = datetime.fromisoformat(n["storm_deadline"])
    if deadline.tzinfo is None:
        raise ValueError(f"storm_deadline {n['storm_deadline']!r} has no time zone")
    actor = n.get("storm_set_by") or set_by or last.actor
    act = datetime.fromisoformat(n["storm_activated_at"]) if n.get("storm_activated_at") else (set_at or last.ts)
    if act.tzinfo is None:
        raise ValueError(f"storm_activated_at {act} has no time zone")
    reason = n.get("storm_reason") or set_reason or f"operator {actor}"
    out.update(target=target / 100.0, deadline=deadline.astimezone(timezone.utc),
               activated_at=act.astimezone(timezone.utc), reason=reason, set_by=actor)
    return out


def reserve_records(ledger: PolicyLedger) -> list[Any]:
    """The ledger's ``reserve`` ``policy_change`` records, oldest first."""
    return [r for r in ledger.query(kinds=["policy_change"]) if r.payload.get("policy") == "reserve"]


class ReservePolicy:
    """The live reserve of one site.

    Parameters
    ----------
    default : Reserve
        The config's (frozen) reserve section: the floor until someone changes it, and the
        storm target, lead and everything else the policy does not change.
    now : callable
        The runtime's clock (UTC).
    storm : StormMode, optional
        Storm mode to drive (give it to the controller too); a new one by default.
    ledger : PolicyLedger, optional
        Where changes are recorded (set later with :attr:`ledger` when opened after).
    """

    def __init__(self, default: Reserve, now: Any, storm: StormMode | None = None,
                 ledger: PolicyLedger | None = None) -> None:
        self.default = default
        self.now = now
        self.storm = storm if storm is not None else StormMode()
        self.storm.lead = timedelta(hours=default.storm_lead_h)
        self.storm.target = default.storm_target_pct / 100.0
        self.ledger = ledger
        self.storm_set_by: str | None = None  #: actor of the storm mode in force (operator or ``jma``)
        self.warning_reason: str | None = None  #: reason of the storm mode the JMA watch raised
        #: what :meth:`restore` brought back (None: config defaults)
        self.restored: dict[str, Any] | None = None
        self._reserve = default

    # ------------------------------------------------------------------ state
    @property
    def floor_pct(self) -> float:
        """The reserve floor in force [% of usable capacity] (before the autonomy term)."""
        return self._reserve.floor_pct

    def reserve(self) -> Reserve:
        """The config's reserve section with the floor in force (what the floor formula reads)."""
        return self._reserve

    def _set_floor(self, floor_pct: float) -> None:
        self._reserve = self.default.model_copy(update={"floor_pct": float(floor_pct)})

    def state(self) -> dict[str, Any]:
        """The policy as recorded in ``policy_change`` records (``old`` / ``new``) and replayed
        at start: floor [%], storm mode with target [%], deadline, reason, activation time
        and who set it."""
        st = self.storm
        return {"floor_pct": self.floor_pct, "storm": st.active,
                "storm_target_pct": round(100 * st.target, 1), "storm_deadline": iso(st.deadline),
                "storm_reason": st.reason or None,
                "storm_activated_at": iso(st.activated_at) if st.active else None,
                "storm_set_by": self.storm_set_by if st.active else None}

    def _record(self, actor: str, old: dict[str, Any], reason: str) -> dict[str, Any]:
        new = self.state()
        if self.ledger is not None:
            self.ledger.policy_change(actor, "reserve", old, new, reason)
        return new

    # ------------------------------------------------------------------ operator
    def set_reserve(self, actor: str, *, floor_pct: float | None = None, storm: bool | None = None,
                    storm_target_pct: float | None = None, storm_deadline: datetime | None = None,
                    reason: str = "") -> dict[str, Any]:
        """Change the reserve floor [%] and/or storm mode (on needs a future deadline).
        Validates everything before changing anything (:class:`~vpp.errors.ServiceError`);
        recorded in the ledger. Returns the new :meth:`state`."""
        now = self.now()
        tgt = self.default.storm_target_pct
        if floor_pct is not None and not (math.isfinite(floor_pct) and 0 <= floor_pct <= 100):
            raise ServiceError(f"floor_pct must be between 0 and 100 %, got {floor_pct}")
        if storm:
            tgt = storm_target_pct if storm_target_pct is not None else tgt
            if not (math.isfinite(tgt) and 0 <= tgt <= 100):
                raise ServiceError(f"storm_target_pct must be between 0 and 100 %, got {tgt}")
            if storm_deadline is None:
                raise ServiceError("storm mode needs a deadline (when the storm is expected)")
            if storm_deadline.tzinfo is None:
                raise ServiceError("storm_deadline needs a time zone (e.g. 2026-11-23T18:00:00+09:00)")
            if storm_deadline <= now:
                raise ServiceError("storm_deadline must be in the future")
        old = self.state()
        if floor_pct is not None:
            self._set_floor(floor_pct)
        if storm is True:
            self.storm.on(now, tgt / 100.0, storm_deadline.astimezone(timezone.utc), reason or f"operator {actor}")
            self.storm_set_by, self.warning_reason = actor, None
        elif storm is False:
            self.storm.off()
            self.storm_set_by = self.warning_reason = None
        new = self._record(actor, old, reason)
        log.warning("operator %s changed the reserve: %s -> %s", actor, old, new)
        return new

    # ------------------------------------------------------------------ weather warnings
    def warning_storm_active(self) -> bool:
        """Whether the storm mode in force is one a warning watch raised (not an operator's)."""
        st = self.storm
        return self.warning_reason is not None and st.active and st.reason == self.warning_reason

    def raise_warning_storm(self, actor: str, deadline: datetime, reason: str) -> dict[str, Any]:
        """Storm mode for a weather warning (target: the config's), recorded by ``actor``.
        Re-raising the watch's own storm (new deadline, or the first poll after a restart that
        restored it) keeps the ramp's start: the floor reached so far is not dropped."""
        now = self.now()
        old = self.state()
        st = self.storm
        since = st.activated_at if self.warning_storm_active() and st.activated_at is not None else now
        st.on(now, self.default.storm_target_pct / 100.0, deadline.astimezone(timezone.utc), reason)
        st.activated_at = min(since, now)
        self.warning_reason, self.storm_set_by = reason, actor
        return {"old": old, "new": self._record(actor, old, reason)}

    def lift_warning_storm(self, actor: str, reason: str) -> dict[str, Any]:
        """Switch off the storm mode the watch raised (its warnings were lifted)."""
        old = self.state()
        self.storm.off()
        self.warning_reason = self.storm_set_by = None
        return {"old": old, "new": self._record(actor, old, reason)}

    # ------------------------------------------------------------------ restart
    def replay(self, recs: list[Any]) -> dict[str, Any]:
        """Put the policy of the ``reserve`` records ``recs`` (:func:`restored_policy`) in force:
        the operator's floor, never below the config file's (safety first: an engineer may have
        raised it while the service was down), and storm mode with who set it. Raises like
        :func:`restored_policy` on a record that cannot be read; returns what it read."""
        got = restored_policy(recs, self.default.storm_target_pct)
        self._set_floor(max(got["floor_pct"], self.default.floor_pct))
        if got["storm"]:
            self.storm.on(got["activated_at"], got["target"], got["deadline"], got["reason"])
            self.storm_set_by = got["set_by"]
            self.warning_reason = got["reason"] if got["set_by"] == "jma" else None
        else:
            self.storm.off()
        return got

    def restore(self, ledger: PolicyLedger, alarms: Alarms) -> dict[str, Any] | None:
        """Replay the newest ``reserve`` ``policy_change`` record of ``ledger`` (see module
        doc) and audit it there (``reserve_restored``); returns what was restored, None
        without such a record. A record that cannot be read raises the ``reserve`` alarm and
        leaves the defaults."""
        recs = reserve_records(ledger)
        if not recs:
            return None
        try:
            got = self.replay(recs)
        except (KeyError, TypeError, ValueError) as e:
            msg = f"reserve policy not restored from ledger record {recs[-1].id}: {type(e).__name__}: {e}"
            log.error(msg)
            alarms.raise_("reserve", msg + "; config defaults in force", self.now(), "warning")
            return None
        config_floor = self.default.floor_pct
        st = self.storm
        policy = self.state()
        expired = bool(st.active and st.deadline is not None and st.deadline <= self.now())
        self.restored = {**policy, "record": recs[-1].id, "recorded_at": iso(recs[-1].ts),
                         "recorded_by": recs[-1].actor, "deadline_passed": expired,
                         "config_floor_pct": config_floor}
        ledger.audit("system", "reserve_restored", **self.restored)
        log.warning("reserve policy restored from the ledger (record %s by %s at %s): %s%s", recs[-1].id,
                    recs[-1].actor, iso(recs[-1].ts), policy,
                    " (storm deadline passed: holding the storm target)" if expired else "")
        if got["floor_pct"] < config_floor:
            log.warning("the operator's last reserve floor %.1f %% is below the config's %.1f %%: the "
                        "config's floor stands after a restart (lower it in the config file)",
                        got["floor_pct"], config_floor)
        return self.restored
