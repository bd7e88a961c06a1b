"""The message envelope every bus message carries (JSON), and its validation.

Fields: ``id`` (unique; also the ``Nats-Msg-Id`` header, so the server drops a re-sent
copy), ``town``, ``kind`` (see :mod:`vpp.bus.subjects`), ``seq`` (the sender's counter per
town and kind, strictly increasing: a receiver applies only a command newer than the last it
applied of that kind, so an out-of-order or replayed older command is never applied),
``issued_at`` (UTC ISO), ``lease_until`` (commands only: after it the command must not be
applied) and ``body`` (the kind's payload).

A malformed message raises :class:`BusMessageError` naming the field; consumers count and
drop it (acknowledged, never redelivered forever), they never crash.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from vpp.bus.subjects import DOWN_KINDS, KINDS, check_town, subject
from vpp.timefmt import iso


class BusMessageError(ValueError):
    """A bus message that cannot be read; ``str()`` names the field."""


@dataclass(frozen=True)
class Envelope:
    id: str
    town: str
    kind: str
    seq: int
    issued_at: datetime
    body: dict[str, Any] = field(default_factory=dict)
    lease_until: datetime | None = None

    @property
    def subject(self) -> str:
        return subject(self.town, self.kind)

    @property
    def is_command(self) -> bool:
        return self.kind in DOWN_KINDS

    def expired(self, now: datetime) -> bool:
        """Whether the command's lease is over at ``now`` (a command without lease never is)."""
        return self.lease_until is not None and now >= self.lease_until

    def encode(self) -> bytes:
        doc = {"id": self.id, "town": self.town, "kind": self.kind, "seq": self.seq,
               "issued_at": iso(self.issued_at, ms=True), "body": self.body}
        if self.lease_until is not None:
            doc["lease_until"] = iso(self.lease_until, ms=True)
        return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()

    def headers(self) -> dict[str, str]:
        return {"Nats-Msg-Id": self.id}


def _time(doc: dict, name: str) -> datetime:
    v = doc.get(name)
    if not isinstance(v, str):
        raise BusMessageError(f"{name}: expected an ISO time string, got {v!r}")
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError as e:
        raise BusMessageError(f"{name}: not an ISO time: {v!r}") from e
    if t.tzinfo is None:
        raise BusMessageError(f"{name}: needs a time zone: {v!r}")
    return t.astimezone(timezone.utc)


def decode(data: bytes) -> Envelope:
    """Parse and validate one message (:class:`BusMessageError` naming the bad field)."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BusMessageError(f"message: not JSON ({e})") from e
    if not isinstance(doc, dict):
        raise BusMessageError("message: expected a JSON object")
    mid = doc.get("id")
    if not isinstance(mid, str) or not 0 < len(mid) <= 200:
        raise BusMessageError(f"id: expected a non-empty string, got {mid!r}")
    try:
        town = check_town(doc.get("town"))
    except ValueError as e:
        raise BusMessageError(f"town: {e}") from e
    kind = doc.get("kind")
    if kind not in KINDS:
        raise BusMessageError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    seq = doc.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise BusMessageError(f"seq: expected an integer >= 0, got {seq!r}")
    body = doc.get("body", {})
    if not isinstance(body, dict):
        raise BusMessageError("body: expected a JSON object")
    lease = _time(doc, "lease_until") if doc.get("lease_until") is not None else None
    if kind in DOWN_KINDS and lease is None:
        raise BusMessageError("lease_until: a command needs a lease")
    return Envelope(mid, town, kind, seq, _time(doc, "issued_at"), body, lease)


def number(body: dict, name: str, *, lo: float = -math.inf, hi: float = math.inf) -> float:
    """``body[name]`` as a finite float in ``[lo, hi]`` (:class:`BusMessageError` naming it)."""
    v = body.get(name)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise BusMessageError(f"body.{name}: expected a finite number, got {v!r}")
    if not lo <= v <= hi:
        raise BusMessageError(f"body.{name}: {v} outside [{lo}, {hi}]")
    return float(v)


def body_time(body: dict, name: str) -> datetime:
    try:
        return _time(body, name)
    except BusMessageError as e:
        raise BusMessageError(f"body.{e}") from None
