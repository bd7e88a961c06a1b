"""The JMA watch: weather warnings drive storm mode.

Every :data:`JMA_POLL_S` wall seconds (JMA publishes on the wall clock; the decision itself is
taken on the runtime's clock) :class:`JmaWatch` fetches ``vpp.jma.url`` (else the area's JMA
office document). The document goes to the bid export (:attr:`JmaWatch.doc`: its warning
windows remove day-ahead slots) and :func:`vpp.market.jma_reserve.jma_reserve` drives storm
mode through the :class:`~vpp.control.reserve_policy.ReservePolicy`: a raise code in force
for ``area_code`` (or forecast within ``reserve.storm_lead_h``) switches it on with the
warnings as its reason, their lifting switches it off again (only a storm mode the watch
raised; an operator's is left alone and the warning audited ``jma_warning``). Each change is a
``policy_change`` ledger record by actor ``jma`` with its reason, followed by a re-plan
(flexibility and bids follow storm mode). A failed fetch or a malformed document raises the
``jma`` alarm and keeps the last good document; so does a report older than
``vpp.jma.max_age_h`` on the runtime's clock (:func:`vpp.market.jma.check_fresh`): a stale
document neither lifts nor raises storm mode and does not reach the bid export. Nothing here
stops the runtime.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from vpp.config import SiteConfig
from vpp.control.alarms import Alarms
from vpp.control.reserve_policy import ReservePolicy
from vpp.market.jma import check_fresh, fetch_warning_doc
from vpp.market.jma_reserve import jma_reserve

log = logging.getLogger(__name__)

#: Wall seconds between fetches of the warning document (JMA updates it as warnings are issued)...
JMA_POLL_S = 180.0
#: ...and the HTTP timeout of one fetch [s].
JMA_TIMEOUT_S = 10.0
#: The actor of the watch's ledger records.
ACTOR = "jma"


class JmaWatch:
    """Fetch, alarm, apply to storm mode, re-plan (see module doc).

    Parameters
    ----------
    config : SiteConfig
    policy : ReservePolicy
        Storm mode goes on and off through it (and is recorded in its ledger).
    alarms : Alarms
        The ``jma`` alarm.
    now : callable
        The runtime's clock (UTC).
    replan : async callable
        Re-plan after a change.
    audit : callable
        ``(actor, action, **detail)``: the ledger's audit trail.
    poll_s : float
        Wall seconds between fetches.
    """

    def __init__(self, config: SiteConfig, policy: ReservePolicy, alarms: Alarms, now: Callable[[], datetime],
                 replan: Callable[[], Awaitable[None]], audit: Callable[..., None],
                 poll_s: float = JMA_POLL_S) -> None:
        self.config, self.policy, self.alarms, self.now = config, policy, alarms, now
        self.replan, self.audit, self.poll_s = replan, audit, poll_s
        self.doc: dict[str, Any] | None = None  #: the last good warning document
        jc = config.vpp.jma
        #: what the watch saw and decided (``status()["jma"]``)
        self.state: dict[str, Any] = {"enabled": True, "url": jc.url, "area_code": jc.area_code, "report": None,
                                      "fetched_at": None, "raise": False, "reason": None, "error": None}
        self._key: tuple | None = None  #: the decision last applied (act on changes only)

    async def run(self) -> None:
        """Poll until cancelled."""
        jc = self.config.vpp.jma
        where = jc.url or f"JMA office of {jc.area_code}"
        while True:
            try:
                doc = await asyncio.to_thread(fetch_warning_doc, jc, timeout_s=JMA_TIMEOUT_S)
                check_fresh(doc, jc, self.now())
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - HTTP, JSON or format: keep the last document
                err = f"{type(e).__name__}: {e}"
                self.state["error"] = err
                kept = self.state["report"]
                self.alarms.raise_("jma", f"JMA warnings from {where} unavailable ({err}); "
                                          f"keeping {'the report of ' + kept if kept else 'no report'}",
                                   self.now(), "warning")
            else:
                self.doc = doc
                self.state.update(report=doc.get("reportDatetime"), error=None,
                                  fetched_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
                self.alarms.clear("jma", self.now(), "JMA warnings answering")
                try:
                    await self.apply(doc)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - one bad document must not end the watch
                    log.exception("JMA warning document not applied")
                    self.alarms.raise_("jma", f"JMA warning document not applied: {type(e).__name__}: {e}",
                                       self.now(), "warning")
            await asyncio.sleep(self.poll_s)

    async def apply(self, doc: dict[str, Any]) -> None:
        """Storm mode from one document (acts only when the decision changed)."""
        now = self.now()
        p = self.policy
        d = jma_reserve(doc, self.config.vpp.jma, now, timedelta(hours=self.config.reserve.storm_lead_h))
        self.state.update({"raise": d.raise_, "reason": d.reason})
        if d.key == self._key:
            return
        self._key = d.key
        ours = p.warning_storm_active()
        if d.raise_ and p.storm.active and not ours:
            self.audit(ACTOR, "jma_warning", reason=d.reason, report=d.report,
                       note="operator storm mode active: left as it is")
            return
        if d.raise_:
            change = p.raise_warning_storm(ACTOR, d.deadline, d.reason)
        elif ours:
            change = p.lift_warning_storm(ACTOR, d.reason)
        else:
            return
        log.warning("JMA watch changed the reserve: %s -> %s (%s)", change["old"], change["new"], d.reason)
        await self.replan()
