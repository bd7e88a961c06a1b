"""The telemetry spool under faults: bit flips, short writes, poison records and a full disk
never hide good records, never block replay, and always leave an alarm behind."""
from __future__ import annotations

import asyncio
import errno
import os
from datetime import UTC, datetime, timedelta

import pytest

from drivers.protocols import DeviceKind, Quality, Snapshot
from vpp.config import EmbeddedStorage
from vpp.control.alarms import Alarms
from vpp.control.liveness import Liveness
from vpp.storage.base import StoreUnavailable, WriteResult
from vpp.storage.pipeline import TelemetryPipeline, encode_batch
from vpp.storage.spool import Spool, SpoolWriteError, scan_segment

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RECS = [f"record-{i}".encode() * 4 for i in range(5)]


def filled(tmp_path, **kw) -> Spool:
    s = Spool(tmp_path / "spool", max_bytes=100_000, **kw)
    for r in RECS:
        s.append(r)
    s.close()
    return s


def offset_of(k: int) -> int:
    """Byte offset of record ``k`` in a segment holding :data:`RECS` (header: length u32 LE,
    crc32 u32 LE)."""
    return sum(8 + len(r) for r in RECS[:k])


def flip(path, at: int) -> None:
    b = bytearray(path.read_bytes())
    b[at] ^= 0x40
    path.write_bytes(bytes(b))


@pytest.mark.parametrize("where", ["payload", "crc", "length"])
def test_a_bit_flip_costs_one_record_and_the_segment_is_quarantined(tmp_path, where):
    s = filled(tmp_path)
    (seg,) = s.segments()
    flip(seg, offset_of(2) + {"payload": 12, "crc": 5, "length": 2}[where])
    read = scan_segment(seg)
    assert read.records == RECS[:2] + RECS[3:] and read.damaged_bytes > 0
    head = s.oldest()
    assert head is not None and head[1] == RECS[:2] + RECS[3:]
    assert s.quarantined_files() == 1 and (s.quarantine_dir / seg.name).read_bytes() == seg.read_bytes()


def test_a_short_write_is_cut_back_and_the_segment_rolled(tmp_path):
    torn = {"on": True}

    def writer(fd, data):
        if torn["on"]:
            return os.write(fd, data[: len(data) // 2])  # the disk took half
        return os.write(fd, data)

    s = Spool(tmp_path / "spool", max_bytes=100_000, writer=writer)
    torn["on"] = False
    s.append(RECS[0])
    (seg,) = s.segments()
    size = seg.stat().st_size
    torn["on"] = True
    with pytest.raises(SpoolWriteError, match="short write"):
        s.append(RECS[1])
    assert seg.stat().st_size == size and s.bytes == size and s.fault and s.faults == 1
    torn["on"] = False
    s.append(RECS[2])
    assert s.fault is None and len(s.segments()) == 2  # rolled: the next record went to a new segment
    got = []
    while (head := s.oldest()) is not None:
        got += head[1]
        s.consume(head[0])
    assert got == [RECS[0], RECS[2]] and s.quarantined_files() == 0


def test_a_full_disk_evicts_the_oldest_and_keeps_the_newest(tmp_path):
    full = {"n": 0}

    def writer(fd, data):
        if full["n"]:
            full["n"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    s = Spool(tmp_path / "spool", max_bytes=100_000, segment_bytes=1, writer=writer)  # one record per segment
    for r in RECS[:3]:
        s.append(r)
    full["n"] = 1
    assert s.append(RECS[3]) == 1  # the oldest segment made room
    assert s.fault and s.evicted_records == 1
    got = [r for p in s.segments() for r in scan_segment(p).records]
    assert got == RECS[1:4]
    full["n"] = 5
    s2 = Spool(tmp_path / "other", max_bytes=100_000, writer=writer)
    with pytest.raises(SpoolWriteError) as e:  # nothing older to give up
        s2.append(RECS[0])
    assert e.value.errno == errno.ENOSPC and s2.bytes == 0 and s2.fault


def test_the_budget_keeps_the_newest_data(tmp_path):
    s = Spool(tmp_path / "spool", max_bytes=300, segment_bytes=60)
    for i in range(40):
        s.append(f"{i:04d}".encode() * 10)
    assert s.bytes <= 300 and s.evicted_records > 0
    got = [r for p in s.segments() for r in scan_segment(p).records]
    assert got[-1] == b"0039" * 10 and got == sorted(got)


# -- the pipeline ---------------------------------------------------------------------------
class MemoryStore:
    """A store that is down until ``up`` is set; keeps what it was given by (device, ts)."""

    def __init__(self) -> None:
        self.up = False
        self.points: dict[tuple[str, datetime], Snapshot] = {}

    def open(self) -> None:
        if not self.up:
            raise StoreUnavailable("down (test)")

    def prepare(self, snaps):
        return list(snaps)

    def write_prepared(self, snaps) -> WriteResult:
        return self.write(snaps)

    def write(self, snaps) -> WriteResult:
        if not self.up:
            raise StoreUnavailable("down (test)")
        for s in snaps:
            if not isinstance(s.values.get("power_w"), float):
                raise TypeError(f"power_w must be a float, got {s.values.get('power_w')!r}")  # a poison batch
            self.points[(s.device, s.ts)] = s
        return WriteResult(written=len(snaps))

    def close(self) -> None:
        pass


def snap(i: int) -> Snapshot:
    return Snapshot("pv1", DeviceKind.PV, T0 + timedelta(seconds=i), {"power_w": float(i)}, Quality.GOOD, "")


def pipeline(tmp_path, store) -> TelemetryPipeline:
    cfg = EmbeddedStorage(path=str(tmp_path / "vpp.sqlite"), flush_interval_s=0.02, batch_size=10)
    return TelemetryPipeline(store, cfg, tmp_path / "spool")


async def until(cond, timeout=10.0) -> bool:
    end = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > end:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_poison_records_are_quarantined_and_replay_goes_on(tmp_path):
    sp = Spool(tmp_path / "spool", max_bytes=1_000_000)
    sp.append(encode_batch([snap(i) for i in range(10)]))
    sp.append(b"\xff not json \xff")  # CRC intact, undecodable
    sp.append(b'[["pv1","pv",1,{"power_w":"NaN?"},"good",""]]')  # decodes, the store refuses it
    sp.append(encode_batch([snap(i) for i in range(10, 20)]))
    sp.close()
    store = MemoryStore()
    store.up = True
    p = pipeline(tmp_path, store)
    await p.start()
    for i in range(20, 120):
        p.submit(snap(i))
    assert await p.flushed(10)
    await p.stop()
    m = p.metrics
    assert len(store.points) == 120 and m["quarantined"] == 2 and m["spool_quarantine"] == 2
    alarms = Alarms()
    Liveness._check_spool(alarms, T0, m)
    assert "quarantine" in alarms.active()[0].reason


async def test_a_full_disk_while_the_store_is_down_raises_the_spool_alarm_and_keeps_the_newest(tmp_path):
    store = MemoryStore()
    p = pipeline(tmp_path, store)
    p.spool.segment_bytes = 1  # one batch per segment: eviction has something to give up
    disk = {"full": False}

    def writer(fd, data):
        if disk["full"]:
            disk["full"] = False  # full once: the eviction frees room
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    p.spool.writer = writer
    await p.start()
    for i in range(30):
        p.submit(snap(i))
    assert await until(lambda: p.metrics["spooled"] == 30)
    disk["full"] = True
    for i in range(30, 40):
        p.submit(snap(i))
    assert await until(lambda: p.metrics["spooled"] == 40)
    m = p.metrics
    assert m["spool_fault"] and m["spool_evicted"] == 1
    alarms = Alarms()
    Liveness._check_spool(alarms, T0, m)
    (a,) = alarms.active()
    assert a.key == "spool" and a.severity == "critical"
    store.up = True
    assert await p.flushed(10)
    await p.stop()
    assert sorted(t for _, t in store.points) == [snap(i).ts for i in range(10, 40)]  # oldest batch gave way

