"""Crash-safe on-disk spool of write batches, used while the store is unreachable.

Layout: a directory of append-only segment files ``<seq:012d>.seg``. Each record is
``length (u32 LE) | crc32 (u32 LE) | payload`` and is fsync'd before :meth:`Spool.append`
returns. Consumption is per whole segment: a segment is deleted only after every record in
it was written to the store, so a crash during replay re-sends at most one segment (writes
are idempotent).

Faults
------
* **Failed append** (short write, ``EIO``, ``ENOSPC``, failed fsync): the segment is cut back
  to the end of its last good record and rolled (the next append opens a new segment), and
  :class:`SpoolWriteError` is raised; ``fault`` names the error until an append succeeds
  without help. On ``ENOSPC`` the oldest sealed segments are evicted (newest data kept) and
  the append retried once.
* **Damaged bytes** inside a segment (bit flips, a torn record): the reader skips forward to
  the next record whose length and CRC check out, so one bad record never hides the ones
  behind it. A segment with damage is copied to ``quarantine/`` before it is replayed
  (``quarantined_segments``); a torn tail (fewer bytes than its header announces, a crash
  during append) is only logged.
* **Poison records** (CRC intact, payload unusable by the consumer): the consumer calls
  :meth:`Spool.quarantine_record`; the record lands in ``quarantine/`` and replay goes on.
* **Budget**: the total size is bounded by ``max_bytes``; above 80 % the ``alarm`` flag is
  set. An append that does not fit evicts the oldest sealed segments first (counted in
  ``evicted_records``, ``fault`` set); :class:`SpoolFull` only when the active segment alone
  leaves no room.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)
_HDR = struct.Struct("<II")
QUARANTINE = "quarantine"


class SpoolFull(RuntimeError):
    """Appending would exceed ``max_bytes`` and nothing older can be evicted."""


class SpoolWriteError(OSError):
    """An append failed (short write, I/O error, disk full); the segment was cut back to its
    last good record and rolled, so the spool stays readable."""


@dataclass
class SegmentRead:
    """What :func:`scan_segment` found: intact ``records``, bytes skipped as damaged
    (``damaged_bytes``) and whether the segment ends in a torn record (``torn_tail``)."""

    records: list[bytes] = field(default_factory=list)
    damaged_bytes: int = 0
    torn_tail: bool = False


class Spool:
    """Append-only FIFO of byte payloads on disk (see the module docstring for faults).

    ``writer`` is ``os.write``; tests inject a failing one (short writes, ``ENOSPC``).
    """

    ALARM_FRACTION = 0.8

    def __init__(self, directory: str | os.PathLike, max_bytes: int, segment_bytes: int = 4 * 1024 * 1024,
                 writer: Callable[[int, bytes], int] = os.write):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.quarantine_dir = self.dir / QUARANTINE
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.writer = writer
        self._fd: int | None = None
        self._active: Path | None = None
        self._active_size = 0
        self.fault: str | None = None  #: the current write fault (None when appends succeed)
        self.faults = 0  #: failed appends so far
        self.evicted_records = 0  #: records evicted to keep the newest data within budget
        self.quarantined_segments = 0
        self.quarantined_records = 0
        segs = self.segments()
        self._next = int(segs[-1].stem) + 1 if segs else 1
        self.bytes = sum(p.stat().st_size for p in segs)

    def segments(self) -> list[Path]:
        """Segment files, oldest first."""
        return sorted(self.dir.glob("*.seg"))

    def __len__(self) -> int:
        return len(self.segments())

    @property
    def alarm(self) -> bool:
        return self.bytes > self.ALARM_FRACTION * self.max_bytes

    def quarantined_files(self) -> int:
        """Files waiting in ``quarantine/`` for an operator."""
        return len(list(self.quarantine_dir.glob("*"))) if self.quarantine_dir.is_dir() else 0

    # -- writing -------------------------------------------------------------------------
    def append(self, payload: bytes) -> int:
        """Durably append one record (fsync'd); returns how many older records were evicted
        to make room. Raises :class:`SpoolFull` or :class:`SpoolWriteError`."""
        if not payload:
            raise ValueError("spool records must not be empty")
        rec = _HDR.pack(len(payload), zlib.crc32(payload)) + payload
        evicted = self._make_room(len(rec))
        try:
            self._write(rec)
        except SpoolWriteError as e:
            if e.errno != errno.ENOSPC or not self._sealed():
                raise
            evicted += self._evict_oldest()  # disk full: the newest data wins
            self._write(rec)
        self.fault = "evicted the oldest spooled data to make room" if evicted else None
        return evicted

    def _make_room(self, n: int) -> int:
        if n > self.max_bytes:
            raise SpoolFull(f"record of {n} bytes exceeds the spool budget of {self.max_bytes}")
        evicted = 0
        while self.bytes + n > self.max_bytes and self._sealed():
            evicted += self._evict_oldest()
        if self.bytes + n > self.max_bytes:
            raise SpoolFull(f"spool {self.dir} full ({self.bytes} of {self.max_bytes} bytes)")
        return evicted

    def _sealed(self) -> list[Path]:
        return [p for p in self.segments() if p != self._active]

    def _evict_oldest(self) -> int:
        oldest = self._sealed()[0]
        n = len(scan_segment(oldest).records)
        self.consume(oldest)
        self.evicted_records += n
        log.error("spool %s: evicted segment %s (%d records) to keep the newest data", self.dir, oldest.name, n)
        return n

    def _write(self, rec: bytes) -> None:
        if self._fd is None:
            self._active = self.dir / f"{self._next:012d}.seg"
            self._next += 1
            self._fd = os.open(self._active, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._active_size = os.fstat(self._fd).st_size
            _fsync_dir(self.dir)
        good = self._active_size
        try:
            n = self.writer(self._fd, rec)
            if n != len(rec):
                raise OSError(errno.EIO, f"short write: {n} of {len(rec)} bytes")
            os.fsync(self._fd)
        except OSError as e:
            self._cut_back(good)
            self.faults += 1
            self.fault = f"spool write failed: {e}"
            log.error("spool %s: %s; segment cut back to %d bytes and rolled", self.dir, self.fault, good)
            raise SpoolWriteError(e.errno or errno.EIO, self.fault) from e
        self._active_size = good + len(rec)
        self.bytes += len(rec)
        if self._active_size >= self.segment_bytes:
            self.seal()

    def _cut_back(self, good: int) -> None:
        """Truncate the active segment to ``good`` bytes (its last good record) and roll."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)
        except OSError as e:  # the reader skips the garbage anyway
            log.error("spool %s: cannot truncate %s: %s", self.dir, self._active, e)
        self.seal()

    def seal(self) -> None:
        """Close the active segment so it can be replayed."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._active = None

    # -- reading -------------------------------------------------------------------------
    def oldest(self) -> tuple[Path, list[bytes]] | None:
        """The oldest segment and its intact records (the active one is sealed first); a
        segment with damaged bytes is copied to ``quarantine/`` first."""
        segs = self.segments()
        if not segs:
            return None
        if self._active is not None and segs[0] == self._active:
            self.seal()
        read = scan_segment(segs[0])
        if read.damaged_bytes:
            self._quarantine_copy(segs[0], read.damaged_bytes)
        return segs[0], read.records

    def _quarantine_copy(self, seg: Path, damaged: int) -> None:
        self.quarantine_dir.mkdir(exist_ok=True)
        dest = self.quarantine_dir / seg.name
        if not dest.exists():
            shutil.copyfile(seg, dest)
            self.quarantined_segments += 1
            log.error("spool segment %s: %d damaged bytes skipped; copy kept in %s", seg.name, damaged, dest)

    def quarantine_record(self, segment: Path, index: int, payload: bytes, why: str) -> Path:
        """Keep a record the consumer cannot use (``<segment>-<index>.rec``) and go on."""
        self.quarantine_dir.mkdir(exist_ok=True)
        dest = self.quarantine_dir / f"{segment.stem}-{index:06d}.rec"
        dest.write_bytes(payload)
        self.quarantined_records += 1
        log.error("spool segment %s record %d quarantined (%s): %s", segment.name, index, why, dest)
        return dest

    def consume(self, segment: Path) -> None:
        """Delete a fully replayed segment (already gone, e.g. evicted: nothing to do)."""
        try:
            size = segment.stat().st_size
            segment.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(self.dir)
        self.bytes = max(0, self.bytes - size)

    def close(self) -> None:
        self.seal()


def scan_segment(path: Path) -> SegmentRead:
    """Intact records of a segment; damaged bytes are skipped up to the next record whose
    header and CRC check out (see the module docstring)."""
    data = memoryview(path.read_bytes())
    out = SegmentRead()
    pos, end = 0, len(data)
    while pos + _HDR.size <= end:
        rec = _record_at(data, pos)
        if rec is not None:
            out.records.append(rec)
            pos += _HDR.size + len(rec)
            continue
        n, _ = _HDR.unpack_from(data, pos)
        nxt = _resync(data, pos + 1)
        if nxt is None:
            if pos + _HDR.size + n > end:
                out.torn_tail = True  # a crash during append: expected, not quarantined
                log.warning("spool segment %s: torn record at byte %d discarded", path.name, pos)
            else:
                out.damaged_bytes += end - pos
            return out
        out.damaged_bytes += nxt - pos
        log.warning("spool segment %s: %d damaged bytes at %d skipped", path.name, nxt - pos, pos)
        pos = nxt
    if pos != end:
        out.torn_tail = True
        log.warning("spool segment %s: %d trailing bytes discarded", path.name, end - pos)
    return out


def read_records(path: Path) -> Iterator[bytes]:
    """Intact records of a segment, in order (damaged bytes skipped)."""
    yield from scan_segment(path).records


def _record_at(data: memoryview, pos: int) -> bytes | None:
    n, crc = _HDR.unpack_from(data, pos)
    start = pos + _HDR.size
    if n == 0 or start + n > len(data):  # appends are never empty: zeroed bytes are no record
        return None
    payload = data[start:start + n]
    return bytes(payload) if zlib.crc32(payload) == crc else None


def _resync(data: memoryview, pos: int) -> int | None:
    """The first offset ``>= pos`` where an intact record starts (None: none follows)."""
    for p in range(pos, len(data) - _HDR.size + 1):
        if _record_at(data, p) is not None:
            return p
    return None


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
