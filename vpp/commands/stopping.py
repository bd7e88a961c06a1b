"""How every long-running command stops: SIGINT/SIGTERM (and an optional duration) set one event."""
from __future__ import annotations

import asyncio
import contextlib
import signal


def stop_event(duration_s: float | None = None) -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, or after ``duration_s`` wall seconds (None = never).
    Call inside the running event loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on every platform
            loop.add_signal_handler(sig, stop.set)
    if duration_s is not None:
        loop.call_later(duration_s, stop.set)
    return stop
