"""Disk spool: ordered, crash-safe records, bounded size with an alarm."""
from __future__ import annotations

import pytest

from vpp.storage.spool import Spool, SpoolFull, read_records


def test_records_come_back_in_order_across_segments(tmp_path):
    s = Spool(tmp_path, max_bytes=10_000, segment_bytes=100)
    for i in range(10):
        s.append(f"batch-{i}".encode() * 5)
    got = []
    while (head := s.oldest()) is not None:
        seg, recs = head
        got += recs
        s.consume(seg)
    assert got == [f"batch-{i}".encode() * 5 for i in range(10)]
    assert s.bytes == 0 and len(s) == 0


def test_torn_tail_is_discarded_and_reopen_continues(tmp_path):
    s = Spool(tmp_path, max_bytes=10_000)
    s.append(b"one")
    s.append(b"two")
    s.close()
    seg = s.segments()[0]
    with open(seg, "ab") as f:  # a crash in the middle of the third append
        f.write(b"\x10\x00\x00\x00\xde\xad")
    assert list(read_records(seg)) == [b"one", b"two"]
    s2 = Spool(tmp_path, max_bytes=10_000)
    s2.append(b"three")
    assert [r for p in s2.segments() for r in read_records(p)] == [b"one", b"two", b"three"]


def test_bounded_with_alarm_above_80_percent(tmp_path):
    s = Spool(tmp_path, max_bytes=1000)
    s.append(b"x" * 700)
    assert not s.alarm
    s.append(b"x" * 100)
    assert s.alarm
    with pytest.raises(SpoolFull):
        s.append(b"x" * 300)
