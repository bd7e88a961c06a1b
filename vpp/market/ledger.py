"""Settlement ledger service: what gets recorded, and exports per period.

Persistence (append-only SQLite, idempotency keys) lives in :mod:`vpp.storage.ledger`;
this module adds the domain vocabulary on top: typed helpers for audit and policy records,
and CSV/JSON export of a period for settlement with the aggregator.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from vpp.storage.ledger import (
    KINDS,
    ChainReport,
    IdempotencyConflict,
    LedgerError,
    LedgerRecord,
    NewRecord,
    SqliteLedgerStore,
    canonical_hash,
    format_ts,
)

__all__ = ["KINDS", "ChainReport", "IdempotencyConflict", "Ledger", "LedgerError", "LedgerRecord", "NewRecord",
           "canonical_hash"]

EXPORT_COLUMNS = ("seq", "id", "kind", "ts", "actor", "ref", "idempotency_key", "algorithm_version",
                  "tariff_version", "co2_version", "payload")


class Ledger:
    """Domain facade over a :class:`~vpp.storage.ledger.SqliteLedgerStore`.

    ``clock`` returns the current UTC time; it stamps every record (inject a simulated clock
    in scenarios).
    """

    def __init__(self, store: SqliteLedgerStore, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def open(cls, path: str | Path, clock: Callable[[], datetime] | None = None) -> "Ledger":
        return cls(SqliteLedgerStore(path), clock)

    def close(self) -> None:
        self.store.close()

    def record(self, kind: str, actor: str, payload: dict[str, Any], **kw: Any) -> tuple[LedgerRecord, bool]:
        """Append one record (see :class:`~vpp.storage.ledger.NewRecord` for ``kw``)."""
        return self.store.append(NewRecord(kind=kind, actor=actor, payload=payload, ts=self.clock(), **kw))

    def record_many(self, recs: Iterable[NewRecord]) -> list[tuple[LedgerRecord, bool]]:
        """Append several records atomically, stamping those without ``ts`` with the clock."""
        now = self.clock()
        return self.store.append_many([r if r.ts else _with_ts(r, now) for r in recs])

    def audit(self, actor: str, action: str, **detail: Any) -> LedgerRecord:
        """Record who did what (``action``), with free-form JSON ``detail``."""
        return self.record("audit", actor, {"action": action, **detail})[0]

    def policy_change(self, actor: str, policy: str, old: Any, new: Any, reason: str = "") -> LedgerRecord:
        return self.record("policy_change", actor, {"policy": policy, "old": old, "new": new,
                                                    "reason": reason})[0]

    def verify(self) -> ChainReport:
        """Check the ledger's hash chain; names the first broken record."""
        return self.store.verify()

    def get(self, record_id: str) -> LedgerRecord | None:
        return self.store.get(record_id)

    def get_by_key(self, idempotency_key: str) -> LedgerRecord | None:
        return self.store.get_by_key(idempotency_key)

    def query(self, start: datetime | None = None, end: datetime | None = None,
              kinds: Iterable[str] | None = None, ref: str | None = None) -> list[LedgerRecord]:
        return self.store.query(start, end, kinds, ref)

    def export(self, start: datetime, end: datetime, fmt: Literal["csv", "json"] = "json",
               kinds: Iterable[str] | None = None) -> str:
        """Records with ``start <= ts < end`` as CSV (payload as a JSON column; cells that a
        spreadsheet would run as formulas are neutralised by :func:`csv_safe`) or JSON.

        JSON: ``{"period": {"start", "end"}, "records": [...]}``, records in ledger order.
        """
        recs = self.query(start, end, kinds)
        if fmt == "json":
            return json.dumps(
                {"period": {"start": format_ts(start), "end": format_ts(end)},
                 "records": [r.as_dict() for r in recs]},
                ensure_ascii=False, indent=1, sort_keys=True,
            )
        if fmt == "csv":
            buf = io.StringIO()
            # CRLF rows (RFC 4180): the writer then quotes a field holding a lone CR, which
            # would otherwise end the row early in a reader and smuggle in cells of its own
            w = csv.writer(buf, lineterminator="\r\n")
            w.writerow(EXPORT_COLUMNS)
            for r in recs:
                d = r.as_dict()
                w.writerow([csv_safe(json.dumps(d[c], sort_keys=True, ensure_ascii=False) if c == "payload"
                                     else ("" if d[c] is None else d[c])) for c in EXPORT_COLUMNS])
            return buf.getvalue()
        raise ValueError(f"unknown export format {fmt!r}")


#: First characters that make a spreadsheet read a cell as a formula (or, tab and CR, shift it).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(cell: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: a string starting with one of
    :data:`FORMULA_STARTS` gets a leading ``'`` (actor names and idempotency keys come from
    callers; ``=HYPERLINK(...)`` must not run on the settlement desk). Other values as given."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def _with_ts(r: NewRecord, ts: datetime) -> NewRecord:
    return replace(r, ts=ts)
