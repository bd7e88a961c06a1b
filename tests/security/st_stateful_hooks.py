"""schemathesis hooks for the stateful phase (loaded through ``SCHEMATHESIS_HOOKS``): offers
and dispatches need domain-valid bodies that no schema can state (a slot in the near future
the server's clock accepts, an override reason for slots above the deliverable power, a
dispatch window inside the awarded slot), so the chains offer → award → dispatch the OpenAPI
links declare get followed. The slot comes from ``VPP_ST_SLOT`` (an RFC 3339 slot start set by
the test, relative to the server's real clock). Awards need nothing here: the link passes the
offer's id and slots."""
from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timedelta
from typing import Any

import schemathesis

SLOT_START = os.environ.get("VPP_ST_SLOT", "")
SLOT_END = (datetime.fromisoformat(SLOT_START) + timedelta(minutes=30)).isoformat() if SLOT_START else ""
P = "/api/v1"


def _is(ctx: Any, method: str, path: str) -> bool:
    op = ctx.operation
    return op is not None and op.method.upper() == method and op.path == path


@schemathesis.hook
def map_body(ctx: Any, body: Any) -> Any:
    """Every offer: one 5 kW slot at ``VPP_ST_SLOT`` with an override reason (the fuzzing phase,
    run without these hooks, covers the generated offer bodies); dispatches keep their generated
    kind and value, and the award id the link gives, inside the awarded slot."""
    if not SLOT_START:
        return body
    if _is(ctx, "POST", f"{P}/offers"):
        return {"direction": "up", "override": "stateful API test: above the deliverable power",
                "slots": [{"start": SLOT_START, "capacity_kw": 5.0}]}
    if _is(ctx, "POST", f"{P}/dispatches") and isinstance(body, dict):
        return {**body, "start": SLOT_START, "end": SLOT_END}
    return body


@schemathesis.hook
def map_headers(ctx: Any, headers: Any) -> Any:
    """A fresh printable Idempotency-Key per creating call: a generated one may be reused
    (a replay, not a new resource) or unprintable (400), and the chain would stop there."""
    creating = [("POST", f"{P}/{r}") for r in ("offers", "awards", "dispatches")]
    if SLOT_START and any(_is(ctx, m, p) for m, p in [*creating, ("PATCH", f"{P}/dispatches/{{dispatch_id}}")]):
        return {**(headers or {}), "Idempotency-Key": uuid.uuid4().hex}
    return headers


@schemathesis.hook
def after_call(ctx: Any, case: Any, response: Any) -> None:
    """Append each creating call to ``VPP_ST_LOG`` (JSON lines: operation, status, the ids it
    sent and the id it got) so the test can tell which chains were followed."""
    log = os.environ.get("VPP_ST_LOG")
    if not log or case.method.upper() != "POST":
        return
    body = case.body if isinstance(case.body, dict) else {}
    try:
        got = response.json().get("id") if response.status_code < 300 else None
    except ValueError:
        got = None
    with open(log, "a", encoding="utf-8") as f:
        f.write(json.dumps({"path": case.path, "status": response.status_code, "offer_id": body.get("offer_id"),
                            "award_id": body.get("award_id"), "id": got}) + "\n")
