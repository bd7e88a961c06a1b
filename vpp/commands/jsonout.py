"""Keeping ``--json`` output pure: while a command computes, stdout goes to stderr.

``vpp … --json | jq`` needs stdout to carry the JSON document and nothing else, but libraries
print on stdout on their own: a solver's banner is written by C code straight to file
descriptor 1, beyond ``sys.stdout``. Inside :func:`stdout_to_stderr` both the Python stream and
descriptor 1 point at stderr; the command prints its JSON after the block.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator


def _flush_c_stdio() -> None:
    """Flush C stdio buffers (a C library's buffered banner must land while fd 1 is stderr)."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C runtime to reach: nothing buffered there either
        pass


@contextlib.contextmanager
def stdout_to_stderr(enabled: bool = True) -> Iterator[None]:
    """Send everything written to stdout inside the block to stderr (no-op if not ``enabled``)."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    _flush_c_stdio()
    saved = os.dup(1)
    old = sys.stdout
    try:
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        yield
    finally:
        sys.stderr.flush()
        _flush_c_stdio()
        os.dup2(saved, 1)
        os.close(saved)
        sys.stdout = old
