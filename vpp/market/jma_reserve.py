"""What a JMA warning document means for the reserve right now (the runtime's JMA watch).

Pure decision over a document (:mod:`vpp.market.jma`) and the site's clock; the runtime
(:class:`vpp.market.jma_watch.JmaWatch`) fetches the document, applies the decision to the
controller's storm mode and logs every change in the ledger.

* A raise code (``vpp.jma.raise_codes``) **in force** for ``vpp.jma.area_code`` → storm mode
  now (deadline = now: the floor goes to the storm target at once and the reserve state
  machine charges toward it).
* Otherwise a **forecast** warning window (:func:`vpp.market.jma.warning_windows`) that
  starts within ``lead`` (``reserve.storm_lead_h``) → storm mode with the window start as
  its deadline (the floor ramps up over the lead). Windows further out are left to the bid
  export, which removes their slots from the day-ahead offer.
* Nothing of the kind → no JMA storm (a storm mode the JMA watch raised is switched off).

``key`` identifies the decision: the runtime acts (and logs) only when it changes, not on
every poll of an unchanged warning.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vpp.config import JmaConfig
from vpp.market.jma import active_codes, should_raise_reserve, warning_windows

__all__ = ["JmaReserve", "jma_reserve"]


@dataclass(frozen=True, slots=True)
class JmaReserve:
    """``raise_``: storm mode wanted; ``deadline``: when the floor must be at the storm target
    (tz-aware, None when not raising); ``reason``: human-readable, names warnings, area and
    report time; ``key``: equal keys = same decision; ``report``: the document's report time."""

    raise_: bool
    deadline: datetime | None
    reason: str
    key: tuple
    report: str | None = None


def jma_reserve(doc: Mapping[str, Any], cfg: JmaConfig, now: datetime, lead: timedelta) -> JmaReserve:
    """Decide storm mode from a JMA warning document at ``now`` (tz-aware) with the storm
    ``lead`` [s as timedelta]. Raises :class:`vpp.market.jma.JmaFormatError` on a document
    without the JMA structure."""
    report = str(doc.get("reportDatetime", "")) or None
    in_force, why = should_raise_reserve(doc, cfg)
    if in_force:
        codes = tuple(sorted(active_codes(doc, [cfg.area_code]) & set(cfg.raise_codes)))
        return JmaReserve(True, now, f"JMA {why}", ("in_force", cfg.area_code, codes), report)
    if not cfg.enabled:
        return JmaReserve(False, None, why, ("off",), report)
    soon = [w for w in warning_windows(doc, cfg)
            if (w.end is None or w.end > now) and w.start - lead <= now]
    if soon:
        w = soon[0]
        return JmaReserve(True, max(w.start, now), w.reason, ("forecast", cfg.area_code, w.start.timestamp()), report)
    return JmaReserve(False, None, f"JMA: {why}", ("none", cfg.area_code), report)
