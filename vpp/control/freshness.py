"""When is a reading or a plan still good enough to act on: the one home of these rules.

Three questions, one answer each:

* **usable input** (:func:`usable`): the controller, the plan and the aggregator's view act
  only on a GOOD snapshot younger than ``max_age_s`` (``STALE_INPUT_S`` wall seconds, in the
  controller clock's seconds).
* **lost device** (:func:`lost`): the runtime's liveness monitor and the status views call a
  device lost when its latest poll is not GOOD or its last good reading is older than
  :func:`lost_after_s` (``LOST_AFTER_POLLS`` poll intervals, at least ``LOST_MIN_S``).
* **fresh plan** (:func:`plan_fresh`): a plan older than ``optimiser.stale_plan_s`` is not
  followed (dispatch, EV limits, flexibility all fall back).

A negative age (a reading or plan stamped after ``now``: the clock stepped back) counts as
stale once it exceeds :func:`future_tolerance_s` (a tenth of the limit, at least 1 s: readings
polled while a step begins may be a moment younger than the step's ``now``).

Polling runs on the wall clock while the controller may run on a simulated clock ``time_scale``
times faster, so wall-second limits are multiplied by ``time_scale``.
"""
from __future__ import annotations

from datetime import datetime

from drivers.protocols import Quality, Snapshot

#: The controller ignores readings older than this many wall seconds [s].
STALE_INPUT_S = 30.0
#: A device whose last good reading is older than this many poll intervals is lost [-]...
LOST_AFTER_POLLS = 5.0
#: ...but never sooner than this [s].
LOST_MIN_S = 5.0


#: Share of an age limit a timestamp may lie in the future [-]...
FUTURE_SHARE = 0.1
#: ...but at least this [s].
FUTURE_MIN_S = 1.0


def future_tolerance_s(limit_s: float) -> float:
    """How far [s] a timestamp may lie after ``now`` and still count, for an age limit ``limit_s`` [s]."""
    return max(FUTURE_MIN_S, FUTURE_SHARE * limit_s)


def usable(snap: Snapshot | None, now: datetime, max_age_s: float) -> tuple[Snapshot | None, str]:
    """``(snap, "")`` when ``snap`` is GOOD and at most ``max_age_s`` [s] old at ``now``,
    else ``(None, why)``."""
    if snap is None:
        return None, "no reading"
    if snap.quality is not Quality.GOOD:
        return None, f"quality {snap.quality.value}: {snap.reason}"
    age = (now - snap.ts).total_seconds()
    if age > max_age_s:
        return None, f"reading {age:.0f} s old"
    if age < -future_tolerance_s(max_age_s):
        return None, f"reading {-age:.0f} s in the future (clock step?)"
    return snap, ""


def lost_after_s(poll_interval_s: float, time_scale: float = 1.0) -> float:
    """Age [s, controller clock] after which a device polled every ``poll_interval_s`` wall
    seconds counts as lost."""
    return max(LOST_MIN_S, LOST_AFTER_POLLS * poll_interval_s) * time_scale


def lost(current: Snapshot | None, last_good: Snapshot | None, now: datetime,
         limit_s: float) -> tuple[bool, str]:
    """Whether a device is lost, and why: its latest poll (``current``) failed, it never
    answered, or its last good reading is older than ``limit_s`` [s]."""
    if current is not None and current.quality is not Quality.GOOD:
        return True, f"{current.quality.value}: {current.reason}".rstrip(": ")
    if last_good is None:
        return True, "no reading yet"
    age = (now - last_good.ts).total_seconds()
    if age > limit_s:
        return True, f"last reading {age:.0f} s ago"
    if age < -future_tolerance_s(limit_s):
        return True, f"last reading {-age:.0f} s in the future (clock step?)"
    return False, ""


def plan_fresh(made_at: datetime | None, now: datetime, stale_plan_s: float) -> tuple[bool, str]:
    """Whether a plan made at ``made_at`` may still be followed at ``now``, and why not."""
    if made_at is None:
        return False, "no plan"
    age = (now - made_at).total_seconds()
    if age > stale_plan_s:
        return False, (f"plan stale (made {made_at.isoformat(timespec='seconds')}, "
                       f"limit {stale_plan_s:.0f} s)")
    if age < -future_tolerance_s(stale_plan_s):
        return False, f"plan made {-age:.0f} s in the future (clock step?)"
    return True, ""
