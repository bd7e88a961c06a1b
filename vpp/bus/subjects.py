"""Subjects and streams of the bus: one subject per town and kind.

``vpp.<town>.<kind>``; ``kind`` is one of :data:`UP_KINDS` (edge → centre: telemetry,
status, acks) or :data:`DOWN_KINDS` (centre → edge: plans, dispatches, policy). Two
JetStream streams hold them: ``VPP_UP`` and ``VPP_DOWN``, file storage, a de-duplication
window of :data:`DUPLICATE_WINDOW_S` on the ``Nats-Msg-Id`` header. Town ids are restricted
to ``[A-Za-z0-9_-]`` so they are one subject token.
"""
from __future__ import annotations

import re

PREFIX = "vpp"
UP_KINDS = ("telemetry", "status", "acks")
DOWN_KINDS = ("plans", "dispatches", "policy")
KINDS = UP_KINDS + DOWN_KINDS
UP_STREAM, DOWN_STREAM = "VPP_UP", "VPP_DOWN"
#: How long the server remembers a message id to drop a re-sent copy [s]. An edge agent that
#: is cut off longer re-sends with the same ids; the consumers' idempotency records catch
#: what falls outside the window.
DUPLICATE_WINDOW_S = 2 * 3600.0
#: How long a stream keeps messages [s] (an agent offline longer replays from its outbox).
MAX_AGE_S = 7 * 24 * 3600.0

_TOWN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_town(town: str) -> str:
    """``town`` if it is a valid town id (one subject token), else :class:`ValueError`."""
    if not isinstance(town, str) or not _TOWN.match(town):
        raise ValueError(f"town id {town!r} must be 1-64 characters of A-Z a-z 0-9 _ -")
    return town


def subject(town: str, kind: str) -> str:
    """The subject of ``kind`` messages of ``town`` (``vpp.<town>.<kind>``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r} (one of {', '.join(KINDS)})")
    return f"{PREFIX}.{check_town(town)}.{kind}"


def all_towns(kind: str) -> str:
    """Wildcard subject of ``kind`` for every town."""
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    return f"{PREFIX}.*.{kind}"


def stream_of(kind: str) -> str:
    return UP_STREAM if kind in UP_KINDS else DOWN_STREAM


def parse_subject(subj: str) -> tuple[str, str]:
    """(town, kind) of a bus subject; :class:`ValueError` for anything else."""
    parts = subj.split(".")
    if len(parts) != 3 or parts[0] != PREFIX or parts[2] not in KINDS:
        raise ValueError(f"not a bus subject: {subj!r}")
    return check_town(parts[1]), parts[2]


#: Most the edge-to-centre stream holds [bytes]; when full, new messages are refused (the
#: agents keep them in their outboxes) rather than old ones dropped.
UP_MAX_BYTES = 2 * 1024**3


def stream_configs() -> list[dict]:
    """Keyword arguments of ``js.add_stream`` for both streams. Up: a work queue (a message is
    removed once its consumer acked it: telemetry does not pile up on the server); down:
    kept ``MAX_AGE_S`` (every town's durable consumer reads it)."""
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType

    common = {"storage": StorageType.FILE, "duplicate_window": DUPLICATE_WINDOW_S, "max_age": MAX_AGE_S}
    return [{"name": UP_STREAM, "subjects": [all_towns(k) for k in UP_KINDS], **common,
             "retention": RetentionPolicy.WORK_QUEUE, "max_bytes": UP_MAX_BYTES, "discard": DiscardPolicy.NEW},
            {"name": DOWN_STREAM, "subjects": [all_towns(k) for k in DOWN_KINDS], **common}]
