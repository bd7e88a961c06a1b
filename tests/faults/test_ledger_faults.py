"""Ledger writes under faults: a dispatch and its ack are one transaction (a failing ack
insert or a process killed between them leaves neither, and the retry works), and the
settlement job records a dispatch once, also across a restart."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from tests.testkit.sites import make_site
from vpp.market.dispatch import DispatchBook, DispatchRequest, Verdict
from vpp.market.ledger import Ledger, LedgerError
from vpp.market.settlement_job import settle_due
from vpp.storage.ledger import SqliteLedgerStore

W0 = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
W1 = W0 + timedelta(hours=1)
REQ = DispatchRequest("award-1", "delta", W0, W1, 1000.0)
OK = Verdict("accepted", 1000.0, ())


def test_a_failed_ack_insert_leaves_no_dispatch_and_the_retry_succeeds(tmp_path, monkeypatch):
    led = Ledger.open(tmp_path / "l.sqlite", clock=lambda: W0)
    book = DispatchBook()
    real = SqliteLedgerStore._insert

    def failing_ack(self, rec):
        if rec.kind == "ack":
            raise LedgerError("disk I/O error (injected)")
        return real(self, rec)

    monkeypatch.setattr(SqliteLedgerStore, "_insert", failing_ack)
    with pytest.raises(LedgerError):
        book.record(led, "agg", "k1", "create", REQ, OK, direction="up", ref="award-1")
    assert led.query() == [] and book.dispatches == {}
    monkeypatch.setattr(SqliteLedgerStore, "_insert", real)
    d, created = book.record(led, "agg", "k1", "create", REQ, OK, direction="up", ref="award-1")
    assert created and d.status == "accepted"
    again, created = book.record(led, "agg", "k1", "create", REQ, OK, direction="up", ref="award-1")
    assert again is d and not created
    (ack,) = led.query(kinds=["ack"])
    assert ack.ref == d.id and led.verify().ok
    led.close()


def test_a_replay_finds_a_dispatch_another_book_wrote(tmp_path):
    """Two books on one ledger (or a book that missed the write): the replay reloads, no KeyError."""
    led = Ledger.open(tmp_path / "l.sqlite", clock=lambda: W0)
    d, _ = DispatchBook().record(led, "agg", "k1", "create", REQ, OK, direction="up", ref="award-1")
    other = DispatchBook()
    again, created = other.record(led, "agg", "k1", "create", REQ, OK, direction="up", ref="award-1")
    assert again.id == d.id and not created
    led.close()


def test_a_process_killed_between_dispatch_and_ack_leaves_neither(tmp_path):
    path = tmp_path / "l.sqlite"
    child = textwrap.dedent(f"""
        import os
        from datetime import datetime, UTC, timedelta
        from vpp.market.dispatch import DispatchBook, DispatchRequest, Verdict
        from vpp.market.ledger import Ledger
        from vpp.storage.ledger import SqliteLedgerStore
        real = SqliteLedgerStore._insert
        def die_at_ack(self, rec):
            if rec.kind == "ack":
                os._exit(9)  # killed after the dispatch row, before the ack and the commit
            return real(self, rec)
        SqliteLedgerStore._insert = die_at_ack
        led = Ledger.open({str(path)!r})
        w0 = datetime(2026, 11, 25, 5, tzinfo=UTC)
        led.audit("op", "before")
        DispatchBook().record(led, "agg", "k1", "create", DispatchRequest("award-1", "delta", w0,
                              w0 + timedelta(hours=1), 1000.0), Verdict("accepted", 1000.0, ()),
                              direction="up", ref="award-1")
    """)
    rc = subprocess.run([sys.executable, "-c", child], timeout=60).returncode
    assert rc == 9
    led = Ledger.open(path, clock=lambda: W0)
    try:
        assert [r.kind for r in led.query()] == ["audit"]
        assert led.verify().ok
        book = DispatchBook()
        assert book.load(led) == 0
        d, created = book.record(led, "agg", "k1", "create", REQ, OK, direction="up", ref="award-1")
        assert created and [r.kind for r in led.query()] == ["audit", "dispatch", "ack"]
    finally:
        led.close()


class Store:
    """The grid meter read 2 kW import in every slot [kWh per 30-min slot = 1.0]."""

    def energy_slots(self, device, *, start, end, slot_s):
        idx = pd.date_range(start, end, freq=f"{slot_s}s", inclusive="left", tz="UTC")
        return pd.DataFrame({device: 1.0}, index=idx)


def test_settlement_records_once_across_a_restart(tmp_path):
    cfg = make_site("flat-20k")
    path = tmp_path / "l.sqlite"
    led = Ledger.open(path, clock=lambda: W0 - timedelta(hours=1))
    book = DispatchBook()
    d, _ = book.record(led, "agg", "k1", "create", REQ, OK, direction="up", ref="award-1")
    led.record("baseline_plan", "agg", {"dispatch_id": d.id, "import_w": {
        (W0 + timedelta(minutes=30 * k)).isoformat(): 3000.0 for k in range(2)}}, ref=d.id)
    assert len(settle_due(led, Store(), cfg, W1, book.dispatches.values())) == 1
    led.close()
    for run in range(2):  # two restarts, each running the job again on a book rebuilt from the ledger
        led = Ledger.open(path, clock=lambda: W1 + timedelta(hours=run))
        book = DispatchBook()
        book.load(led)
        assert settle_due(led, Store(), cfg, W1 + timedelta(hours=run + 1), book.dispatches.values()) == []
        assert len(led.query(kinds=["performance"], ref=d.id)) == 1 and led.verify().ok
        led.close()

