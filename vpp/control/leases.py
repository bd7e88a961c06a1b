"""The lease: how every setpoint is written (it reverts on the device unless renewed)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass
class Lease:
    """A setpoint written to a device; it reverts to idle at ``expires_at`` unless renewed.
    ``expires_mono`` is the same instant on the clock's monotonic seconds (None: unknown),
    which a wall-clock step does not move."""

    device: str
    setpoint_w: float
    source: str
    written_at: datetime
    expires_at: datetime
    expires_mono: float | None = None

    def expired(self, mono_now: float | None = None, now: datetime | None = None) -> bool:
        """Whether the device has reverted: by the monotonic clock when known, else the wall clock."""
        if self.expires_mono is not None and mono_now is not None:
            return mono_now >= self.expires_mono
        return now is not None and now >= self.expires_at
