"""JMA weather warnings (気象警報・注意報) as the storm trigger for the disaster reserve.

Source format: the JSON that JMA's bosai site serves per prefectural forecast office, e.g.
``https://www.jma.go.jp/bosai/warning/data/warning/040000.json`` (Miyagi, 仙台管区気象台)::

    {"reportDatetime": "...+09:00", "publishingOffice": "...", "headlineText": "...",
     "areaTypes": [{"areas": [{"code": "040010", "warnings": [{"code": "03", "status": "発表"}]}]},
                   {"areas": [{"code": "0410000", "warnings": [...]}]}],
     "timeSeries": [...]}

``areaTypes[0]`` holds the class-10 sub-regions (6 digits), ``areaTypes[1]`` the class-20
municipalities (7 digits, e.g. 0410000 仙台市). Each warning has a two-digit ``code``
(03 大雨警報, 10 大雨注意報, 33 大雨特別警報 …) and a ``status``: 発表 (issued), 継続
(continuing), 解除 (lifted), transitions such as 注意報から警報 or 警報から注意報, and
``{"status": "発表警報・注意報はなし"}`` without a code when nothing is in force.

A warning is *active* unless its status is 解除 / 発表警報・注意報はなし, or a downgrade to an
advisory (status ending in から注意報) attached to a warning code. An entry whose code is not
two ASCII digits (e.g. ``"²"``, which ``str.isdigit`` accepts) is skipped with a warning.

Fetching (:func:`fetch_warning_doc`) is https only unless ``vpp.jma.allow_http``, reads at
most ``vpp.jma.max_bytes``, and follows redirects only to the same host (and scheme rules).
How old a report may be (``vpp.jma.max_age_h``) is checked by :func:`check_fresh`.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from vpp.config import JmaConfig

log = logging.getLogger(__name__)

WARNING_URL = "https://www.jma.go.jp/bosai/warning/data/warning/{office}.json"

#: Warning and special-warning names (advisories 10–27 are never a reserve trigger by default).
WARNING_NAMES = {
    "02": "暴風雪警報", "03": "大雨警報", "04": "洪水警報", "05": "暴風警報", "06": "大雪警報",
    "07": "波浪警報", "08": "高潮警報", "10": "大雨注意報", "12": "大雪注意報", "13": "風雪注意報",
    "14": "雷注意報", "15": "強風注意報", "16": "波浪注意報", "17": "融雪注意報", "18": "洪水注意報",
    "19": "高潮注意報", "20": "濃霧注意報", "21": "乾燥注意報", "22": "なだれ注意報", "23": "低温注意報",
    "24": "霜注意報", "25": "着氷注意報", "26": "着雪注意報", "27": "その他の注意報",
    "32": "暴風雪特別警報", "33": "大雨特別警報", "35": "暴風特別警報", "36": "大雪特別警報",
    "37": "波浪特別警報", "38": "高潮特別警報",
}

_INACTIVE = {"解除", "発表警報・注意報はなし"}


class JmaFormatError(ValueError):
    """The document does not have the JMA warning structure."""


class JmaFetchError(RuntimeError):
    """The document was refused at the edge: scheme, size, redirect to another host."""


class JmaStale(JmaFetchError):
    """The report is older than ``vpp.jma.max_age_h``."""


#: Redirects followed (same host only).
MAX_REDIRECTS = 3


def valid_code(code: str) -> bool:
    """Whether ``code`` is a JMA warning code: two ASCII digits."""
    return len(code) == 2 and code.isascii() and code.isdigit()


@dataclass(frozen=True, slots=True)
class JmaWarning:
    area: str
    code: str
    status: str

    @property
    def name(self) -> str:
        return WARNING_NAMES.get(self.code, f"code {self.code}")

    @property
    def active(self) -> bool:
        return is_active(self.code, self.status)


def is_active(code: str, status: str) -> bool:
    """Whether a warning entry means the phenomenon ``code`` is currently in force."""
    if status in _INACTIVE:
        return False
    if status.endswith("から注意報") and _is_warning_code(code):
        return False
    return True


def parse_warnings(doc: Mapping[str, Any]) -> list[JmaWarning]:
    """Flatten every area's warning entries; entries without a code are skipped."""
    try:
        area_types = doc["areaTypes"]
        out = []
        for at in area_types:
            for area in at["areas"]:
                for w in area.get("warnings", []):
                    if "code" not in w:
                        continue
                    code = str(w["code"])
                    if not valid_code(code):
                        log.warning("JMA document: malformed warning code %r in area %s skipped", code, area["code"])
                        continue
                    out.append(JmaWarning(area=str(area["code"]), code=code, status=str(w["status"])))
        return out
    except (KeyError, TypeError) as e:
        raise JmaFormatError(f"not a JMA warning document: missing {e}") from None


def active_codes(doc: Mapping[str, Any], area_codes: Iterable[str]) -> set[str]:
    """Codes of warnings/advisories in force in any of ``area_codes``.

    A six-digit code ending in ``0000`` (a forecast office, e.g. ``040000``) stands for every
    area in the document.
    """
    wanted = set(area_codes)
    everywhere = any(len(a) == 6 and a.endswith("0000") for a in wanted)
    return {w.code for w in parse_warnings(doc) if w.active and (everywhere or w.area in wanted)}


def should_raise_reserve(doc: Mapping[str, Any], cfg: JmaConfig) -> tuple[bool, str]:
    """Decide whether a JMA document should put the reserve into storm mode.

    Returns ``(raise, reason)``; the reason names the warnings, the area and the report time.
    """
    if not cfg.enabled:
        return False, "JMA trigger disabled in config"
    hits = sorted(active_codes(doc, [cfg.area_code]) & set(cfg.raise_codes))
    when = doc.get("reportDatetime", "unknown time")
    if not hits:
        return False, f"no reserve-raising warning in force for {cfg.area_code} (report {when})"
    names = ", ".join(f"{WARNING_NAMES.get(c, c)} ({c})" for c in hits)
    return True, f"{names} in force for {cfg.area_code} (report {when})"


def read_warning_doc(path: str | Path) -> dict[str, Any]:
    """Read a recorded warning JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def fetch_warning_doc(cfg: JmaConfig, *, timeout_s: float = 10.0,
                      transport: httpx.BaseTransport | None = None) -> dict[str, Any]:
    """GET the office's warning JSON (``cfg.url`` overrides the JMA address): https only
    (unless ``cfg.allow_http``), at most ``cfg.max_bytes``, redirects only within the host.
    Raises :class:`JmaFetchError`, :class:`JmaFormatError` or an ``httpx`` error.

    The office is ``cfg.area_code`` when that is an office code, else its first two digits +
    ``0000``; prefectures with several offices (Hokkaido, Kagoshima, Okinawa) need ``cfg.url``.
    """
    office = cfg.area_code if len(cfg.area_code) == 6 and cfg.area_code.endswith("000") else cfg.area_code[:2] + "0000"
    url = cfg.url or WARNING_URL.format(office=office)
    _check_scheme(url, cfg)
    host = urlsplit(url).hostname
    with httpx.Client(timeout=timeout_s, follow_redirects=False, transport=transport) as client:
        for _ in range(MAX_REDIRECTS + 1):
            with client.stream("GET", url) as resp:
                if resp.is_redirect:
                    nxt = str(resp.url.join(resp.headers.get("location", "")))
                    if urlsplit(nxt).hostname != host:
                        raise JmaFetchError(f"redirect from {host} to another host refused: {nxt}")
                    _check_scheme(nxt, cfg)
                    url = nxt
                    continue
                resp.raise_for_status()
                body = _read_limited(resp, cfg.max_bytes)
                break
        else:
            raise JmaFetchError(f"more than {MAX_REDIRECTS} redirects from {cfg.url or host}")
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise JmaFormatError(f"JMA document is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise JmaFormatError("JMA document is not a JSON object")
    parse_warnings(doc)  # refuse a malformed body here, at the edge
    return doc


def _check_scheme(url: str, cfg: JmaConfig) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme != "https" and not (scheme == "http" and cfg.allow_http):
        raise JmaFetchError(f"JMA address must be https (vpp.jma.allow_http for test servers): {url}")


def _read_limited(resp: httpx.Response, limit: int) -> bytes:
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise JmaFetchError(f"JMA document of {declared} bytes exceeds the limit of {limit}")
    buf = bytearray()
    for chunk in resp.iter_bytes():
        buf += chunk
        if len(buf) > limit:
            raise JmaFetchError(f"JMA document exceeds the limit of {limit} bytes")
    return bytes(buf)


def check_fresh(doc: Mapping[str, Any], cfg: JmaConfig, now: datetime) -> datetime:
    """The report time of ``doc``; raises :class:`JmaStale` when it is older than
    ``cfg.max_age_h`` at ``now``, :class:`JmaFormatError` without a readable
    ``reportDatetime``. A report from the future is accepted: that is clock skew (or a
    simulated clock), and refusing it could refuse a storm warning."""
    try:
        report = _parse_time(doc["reportDatetime"])
    except KeyError:
        raise JmaFormatError("JMA document has no reportDatetime") from None
    age = now - report
    if age > timedelta(hours=cfg.max_age_h):
        raise JmaStale(f"JMA report of {report.isoformat()} is {age.total_seconds() / 3600:.1f} h old "
                       f"(limit {cfg.max_age_h:g} h): ignored")
    return report


def _is_warning_code(code: str) -> bool:
    return valid_code(code) and (int(code) < 10 or 32 <= int(code) <= 38)


@dataclass(frozen=True, slots=True)
class WarningWindow:
    """When a reserve-raising warning is (or is forecast to be) in force: ``[start, end)``,
    tz-aware; ``end`` None = open-ended (no time series says when it ends)."""

    start: datetime
    end: datetime | None
    reason: str


#: Time-series level at and above which a block is at warning level (00 none, 10 advisory,
#: 30 warning; higher levels are special warnings / danger levels).
WARNING_LEVEL = 30


def warning_windows(doc: Mapping[str, Any], cfg: JmaConfig) -> list[WarningWindow]:
    """Validity windows of the reserve-raising warnings (``cfg.raise_codes``) for
    ``cfg.area_code`` in a JMA document (``cfg.enabled`` is not consulted: a caller that
    hands a document over wants it read).

    * Time series (``timeSeries[*].timeDefines`` with per-area, per-code ``levels``): each
      define starts a block that lasts until the next one (the last one: as long as the one
      before it, 3 h when alone); a block whose highest level is ≥ :data:`WARNING_LEVEL` for a
      raise code is a window, even when the warning is only forecast (not yet issued).
    * A raise code in force now (``areaTypes``, see :func:`is_active`) counts from
      ``reportDatetime``: until the end of its last warning-level block, or open-ended when
      the document has no warning-level block for it (conservative: unknown end).

    Overlapping or touching windows of the same code are merged. Raises
    :class:`JmaFormatError` on a document without the JMA structure or with unreadable times.
    """
    wanted = {cfg.area_code}
    everywhere = len(cfg.area_code) == 6 and cfg.area_code.endswith("0000")
    raise_codes = set(cfg.raise_codes)

    def area_ok(code: str) -> bool:
        return everywhere or code in wanted

    try:
        report = _parse_time(doc["reportDatetime"])
        blocks: dict[str, list[tuple[datetime, datetime]]] = {}
        for ts in doc.get("timeSeries") or []:
            defines = [_parse_time(t) for t in ts.get("timeDefines", [])]
            ends = _block_ends(defines)
            for at in ts.get("areaTypes", []):
                for area in at.get("areas", []):
                    if not area_ok(str(area.get("code", ""))):
                        continue
                    for w in area.get("warnings", []):
                        code = str(w.get("code", ""))
                        if code not in raise_codes or not valid_code(code):
                            continue
                        for i, (a, b) in enumerate(zip(defines, ends)):
                            if _level_at(w, i) >= WARNING_LEVEL:
                                blocks.setdefault(code, []).append((a, b))
    except (KeyError, TypeError, AttributeError) as e:
        raise JmaFormatError(f"not a JMA warning document: {e!r}") from None
    active = {w.code for w in parse_warnings(doc) if w.active and area_ok(w.area)} & raise_codes
    out: list[WarningWindow] = []
    for code in sorted(active | set(blocks)):
        name = f"{WARNING_NAMES.get(code, code)} ({code})"
        spans = sorted(blocks.get(code, []))
        if code in active:
            end = max((b for _, b in spans), default=None)
            spans.append((report, end))  # type: ignore[arg-type]
            spans.sort(key=lambda s: s[0])
        for a, b in _merge(spans):
            how = "in force" if code in active and a <= report else "forecast"
            until = "until further notice" if b is None else f"until {b.isoformat()}"
            out.append(WarningWindow(a, b, f"JMA {name} {how} for {cfg.area_code} from {a.isoformat()} {until} "
                                           f"(report {doc['reportDatetime']})"))
    return sorted(out, key=lambda w: w.start)


def _parse_time(s: Any) -> datetime:
    try:
        t = datetime.fromisoformat(str(s))
    except ValueError:
        raise JmaFormatError(f"bad time {s!r} in JMA document") from None
    if t.tzinfo is None:
        raise JmaFormatError(f"time {s!r} in JMA document has no UTC offset")
    return t


def _block_ends(defines: list[datetime]) -> list[datetime]:
    if not defines:
        return []
    ends = defines[1:]
    last = defines[-1] - defines[-2] if len(defines) > 1 else timedelta(hours=3)
    return ends + [defines[-1] + last]


def _level_at(warning: Mapping[str, Any], i: int) -> int:
    """Highest level of ``warning``'s time-series entry at block ``i`` (0 without one)."""
    best = 0
    for lv in warning.get("levels", []) or []:
        for la in lv.get("localAreas", []) or []:
            vals = la.get("levels", []) or []
            if i < len(vals) and str(vals[i]).isascii() and str(vals[i]).isdigit():
                best = max(best, int(vals[i]))
    return best


def _merge(spans: list[tuple[datetime, datetime | None]]) -> list[tuple[datetime, datetime | None]]:
    out: list[tuple[datetime, datetime | None]] = []
    for a, b in spans:
        if out and (out[-1][1] is None or a <= out[-1][1]):
            pa, pb = out[-1]
            out[-1] = (pa, None if pb is None or b is None else max(pb, b))
        else:
            out.append((a, b))
    return out
