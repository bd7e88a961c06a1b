"""The one timestamp format of the API, the ledger views and the CLI's JSON.

Every time the service shows a machine is RFC 3339 in UTC with an explicit offset,
``2026-12-04T13:30:00+00:00`` (seconds), or with milliseconds where latency matters
(``ms=True``). People see times in the site's zone (``site.timezone``); that conversion
happens where they are shown (dashboard, reports), never in the API.
"""
from __future__ import annotations

from datetime import datetime, timezone


def iso(t: datetime | None, ms: bool = False) -> str | None:
    """``t`` as RFC 3339 UTC text (``None`` stays ``None``); naive times are refused."""
    if t is None:
        return None
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t!r}: every time in the service is tz-aware")
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds" if ms else "seconds")
