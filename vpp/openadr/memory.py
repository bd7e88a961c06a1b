"""What the VEN remembers of OpenADR events, rebuilt from the ledger at start.

The VEN keeps, per event id, the dispatches it created for the event's latest modification
and its opt decision (:attr:`vpp.openadr.ven.Ven.results`). That memory must survive a
restart: a cancel (or a newer modification) that arrives after a restart must end the
dispatches of the event it replaces. The ledger already holds everything needed: every
dispatch the VEN creates carries the idempotency key
``dispatch:create:<actor>:oadr:<event id>:<modification>:<interval key>`` and
``source = "openadr"``, and the book knows whether it was rejected or cancelled since.
"""
from __future__ import annotations

import re
from typing import Any, Protocol

#: ``dispatch:create:<actor>:oadr:<event id>:<modification>:<interval key>``
_KEY = re.compile(r"^dispatch:create:[^:]*:oadr:(?P<eid>.+?):(?P<mod>\d+):")


class _Ledger(Protocol):
    def query(self, start: Any = None, end: Any = None, kinds: Any = None, ref: Any = None) -> list: ...


class _Book(Protocol):
    def get(self, dispatch_id: str) -> Any: ...


def event_memory(ledger: _Ledger, book: _Book) -> dict[str, dict[str, Any]]:
    """Per OpenADR event id: ``{"modification", "dispatches", "opt", "reasons"}`` for the
    latest modification the VEN created dispatches for (the shape of ``Ven.results``).

    ``opt`` is ``optOut`` when any of those dispatches was rejected or has been cancelled
    (an opted-out event's dispatches are cancelled at once), else ``optIn``. Events that
    created no dispatch (refused before any: no award, unsupported signal) are not
    remembered; re-sent, they are decided again with the same outcome.
    """
    out: dict[str, dict[str, Any]] = {}
    for r in ledger.query(kinds=["dispatch"]):
        p = r.payload
        if p.get("source") != "openadr" or p.get("action") != "create" or not r.idempotency_key:
            continue
        m = _KEY.match(r.idempotency_key)
        if m is None:
            continue
        eid, mod = m["eid"], int(m["mod"])
        cur = out.get(eid)
        if cur is not None and cur["modification"] > mod:
            continue
        if cur is None or cur["modification"] < mod:
            cur = out[eid] = {"modification": mod, "dispatches": [], "opt": "optIn", "reasons": []}
        cur["dispatches"].append(r.id)
        d = book.get(r.id)
        if d is None or d.status == "rejected" or d.cancelled_at is not None:
            cur["opt"] = "optOut"
            cur["reasons"].extend(getattr(d, "reasons", ()) or ())
    return out
