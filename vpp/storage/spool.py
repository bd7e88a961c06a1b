"""Crash-safe on-disk spool of write batches, used while the store is unreachable.

Layout: a directory of append-only segment files ``<seq:012d>.seg``. Each record is
``length (u32 LE) | crc32 (u32 LE) | payload`` and is fsync'd before :meth:`Spool.append`
returns. A torn tail (crash during append) fails its CRC and is discarded on read.
Consumption is per whole segment: a segment is deleted only after every record in it was
written to the store, so a crash during replay re-sends at most one segment (writes are
idempotent). The total size is bounded by ``max_bytes``; above 80 % the ``alarm`` flag is set.
"""
from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)
_HDR = struct.Struct("<II")


class SpoolFull(RuntimeError):
    """Appending would exceed ``max_bytes``."""


class Spool:
    """Append-only FIFO of byte payloads on disk."""

    ALARM_FRACTION = 0.8

    def __init__(self, directory: str | os.PathLike, max_bytes: int, segment_bytes: int = 4 * 1024 * 1024):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._fd: int | None = None
        self._active: Path | None = None
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

    def append(self, payload: bytes) -> None:
        """Durably append one record (fsync'd). Raises :class:`SpoolFull`."""
        rec = _HDR.pack(len(payload), zlib.crc32(payload)) + payload
        if self.bytes + len(rec) > self.max_bytes:
            raise SpoolFull(f"spool {self.dir} full ({self.bytes} of {self.max_bytes} bytes)")
        if self._fd is None:
            self._active = self.dir / f"{self._next:012d}.seg"
            self._next += 1
            self._fd = os.open(self._active, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            _fsync_dir(self.dir)
        os.write(self._fd, rec)
        os.fsync(self._fd)
        self.bytes += len(rec)
        if os.fstat(self._fd).st_size >= self.segment_bytes:
            self.seal()

    def seal(self) -> None:
        """Close the active segment so it can be replayed."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._active = None

    def oldest(self) -> tuple[Path, list[bytes]] | None:
        """The oldest segment and its intact records (the active one is sealed first)."""
        segs = self.segments()
        if not segs:
            return None
        if self._active is not None and segs[0] == self._active:
            self.seal()
        return segs[0], list(read_records(segs[0]))

    def consume(self, segment: Path) -> None:
        """Delete a fully replayed segment."""
        size = segment.stat().st_size
        segment.unlink()
        _fsync_dir(self.dir)
        self.bytes = max(0, self.bytes - size)

    def close(self) -> None:
        self.seal()


def read_records(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    pos = 0
    while pos + _HDR.size <= len(data):
        n, crc = _HDR.unpack_from(data, pos)
        payload = data[pos + _HDR.size: pos + _HDR.size + n]
        if len(payload) < n or zlib.crc32(payload) != crc:
            log.warning("spool segment %s: torn record at byte %d discarded", path.name, pos)
            return
        yield payload
        pos += _HDR.size + n
    if pos != len(data):
        log.warning("spool segment %s: %d trailing bytes discarded", path.name, len(data) - pos)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
