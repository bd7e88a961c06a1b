"""OpenADR 2.0b VEN on top of :mod:`openleadr`: events become dispatches, the site reports
telemetry.

Events are decided by the same rules as REST dispatches
(:meth:`vpp.market.dispatch.DispatchService.create`, reserve first) and recorded in the
ledger; the VEN opts in when every interval is accepted or partially accepted, and out when
any is rejected (the ledger's ack says why). Each interval becomes one dispatch under the
latest award covering it (an OpenADR event carries no award id); the idempotency key is
``oadr:<event id>:<modification>:<interval uid>``, so a re-sent event is not re-dispatched.

Signal mapping (payloads in kW unless stated; battery > 0 = discharge):

* ``LOAD_DISPATCH`` / ``delta`` — change of site load ``d`` [kW]: battery delta ``−d``
  (load down = discharge up);
* ``LOAD_DISPATCH`` / ``setpoint`` — site battery power [kW];
* ``SIMPLE`` / ``level`` 0–3 — ``level / 3`` of the awarded power as a delta (0: nothing);
* ``CHARGE_STATE`` / ``setpoint`` — SoC target [%].

A cancelled event (or a newer modification) cancels the dispatches of the previous one.

Telemetry: one ``TELEMETRY_USAGE`` report with ``RealPower`` (site battery power [W]) and a
custom ``soc`` measurement [%].
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

from openleadr import OpenADRClient

from vpp.market.dispatch import DispatchError, DispatchRequest, DispatchService
from vpp.openadr.memory import event_memory
from vpp.openadr.tls import client_session

log = logging.getLogger(__name__)

SUPPORTED = {("LOAD_DISPATCH", "delta"), ("LOAD_DISPATCH", "setpoint"), ("SIMPLE", "level"),
             ("CHARGE_STATE", "setpoint")}


def event_requests(event: dict, service: DispatchService) -> list[tuple[str, DispatchRequest | None, str]]:
    """``(interval key, request or None, why none)`` per interval of an openleadr event dict."""
    out: list[tuple[str, DispatchRequest | None, str]] = []
    for sig in event["event_signals"]:
        name, typ = sig["signal_name"], sig["signal_type"]
        for i, iv in enumerate(sig["intervals"]):
            key = f"{sig.get('signal_id', name)}:{iv.get('uid', i)}"
            start = iv["dtstart"].astimezone(UTC)
            end = start + iv["duration"]
            payload = float(iv["signal_payload"])
            if (name, typ) not in SUPPORTED:
                out.append((key, None, f"signal {name}/{typ} not supported"))
                continue
            if name == "CHARGE_STATE":
                out.append((key, DispatchRequest("", "soc_target", start, end, payload / 100.0), ""))
                continue
            if name == "LOAD_DISPATCH" and typ == "setpoint":
                direction, kind, value = ("up" if payload >= 0 else "down"), "setpoint", payload * 1000
            elif name == "LOAD_DISPATCH":
                direction, kind, value = ("up" if payload <= 0 else "down"), "delta", abs(payload) * 1000
            else:  # SIMPLE level: a share of the award, filled in below
                direction, kind, value = "up", "delta", None
            award = service.find_award(start, end, direction)
            if award is None:
                out.append((key, DispatchRequest("", kind, start, end, value or 0.0), "no award covers the interval"))
                continue
            if value is None:
                level = min(max(payload, 0.0), 3.0)
                value = min(float(s["accepted_w"]) for s in award.payload["slots"]) * level / 3.0
            out.append((key, DispatchRequest(award.id, kind, start, end, value), ""))
    return out


class Ven:
    """The site's VEN. ``telemetry()`` returns ``(battery power [W], SoC [fraction])``.

    ``start()`` registers with the VTN and starts polling; ``stop()`` ends it. ``results``
    keeps, per event id, the dispatch ids and the opt decision; it starts from the ledger
    (:func:`vpp.openadr.memory.event_memory`), so a cancel after a restart still ends the
    dispatches. TLS (``ca_file``, ``cert``/``key``) as in :mod:`vpp.openadr.tls`; with
    ``vtn_fingerprint`` every VTN message must be signed by that certificate. Other keywords
    go to :class:`openleadr.OpenADRClient`.
    """

    def __init__(self, service: DispatchService, vtn_url: str, ven_name: str,
                 telemetry: Callable[[], tuple[float, float]], *, actor: str = "openadr",
                 report_every: timedelta = timedelta(seconds=10), ca_file: str | None = None,
                 **client_kw: Any) -> None:
        self.service, self.actor, self.telemetry = service, actor, telemetry
        self._tls = (vtn_url, ca_file, client_kw.get("cert"), client_kw.get("key"), client_kw.get("passphrase"))
        self.client = OpenADRClient(ven_name=ven_name, vtn_url=vtn_url, ca_file=ca_file, **client_kw)
        self.client.add_handler("on_event", self.on_event)
        self.client.add_handler("on_update_event", self.on_event)
        rs = dict(sampling_rate=report_every, report_duration=timedelta(hours=1), resource_id="site")
        self.client.add_report(callback=lambda: self.telemetry()[0], measurement="real_power", unit="W",
                               scale="none", **rs)
        self.client.add_report(callback=lambda: 100.0 * self.telemetry()[1], measurement="soc", unit="%", **rs)
        self.results: dict[str, dict[str, Any]] = event_memory(service.ledger, service.book)

    async def start(self) -> None:
        if self.client.client_session is None or self.client.client_session.closed:  # ours (vpp.openadr.tls)
            self.client.client_session = client_session(*self._tls)
        await self.client.run()

    async def stop(self) -> None:
        if self.client.client_session is not None:  # never started: nothing to stop
            await self.client.stop()

    async def on_event(self, event: dict) -> str:
        desc = event["event_descriptor"]
        eid, mod, status = desc["event_id"], desc.get("modification_number", 0), desc.get("event_status")
        prev = self.results.get(eid)
        if prev is not None and (status == "cancelled" or prev["modification"] != mod):
            for did in prev["dispatches"]:
                self.service.cancel(self.actor, did, source="openadr")
        if status == "cancelled":
            self.results[eid] = {"modification": mod, "dispatches": [], "opt": "optIn", "reasons": []}
            return "optIn"
        if prev is not None and prev["modification"] == mod:
            return prev["opt"]
        ids, reasons, opt = [], [], "optIn"
        for key, req, why in event_requests(event, self.service):
            if req is None or why:
                opt = "optOut"
                reasons.append(why)
                continue
            try:
                d, _ = self.service.create(self.actor, f"oadr:{eid}:{mod}:{key}", req, source="openadr")
            except DispatchError as e:
                opt = "optOut"
                reasons.append(e.code)
                continue
            ids.append(d.id)
            if d.status == "rejected":
                opt = "optOut"
                reasons.extend(d.reasons)
        if opt == "optOut":  # all or nothing: an opted-out event must not run in part
            for did in ids:
                self.service.cancel(self.actor, did, source="openadr")
        self.results[eid] = {"modification": mod, "dispatches": ids, "opt": opt, "reasons": reasons}
        log.info("OpenADR event %s (mod %s): %s %s", eid, mod, opt, ", ".join(reasons))
        return opt
