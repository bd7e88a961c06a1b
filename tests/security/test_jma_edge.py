"""The JMA edge: https only unless configured, a size limit, no redirects to other hosts,
stale reports ignored with an alarm (they must not lift storm mode), malformed codes skipped
(they must not turn the bid export into a 500)."""
from __future__ import annotations

import asyncio
import copy
import logging
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import ValidationError

from vpp.config import JmaConfig, read_config, updated
from vpp.control.alarms import Alarms
from vpp.control.reserve_policy import ReservePolicy
from vpp.market import jma_watch
from vpp.market.bids import plan_bids
from vpp.market.jma import (
    JmaFetchError,
    JmaStale,
    check_fresh,
    fetch_warning_doc,
    parse_warnings,
    read_warning_doc,
    warning_windows,
)
from vpp.market.jma_watch import JmaWatch

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "market" / "data"
FORECAST = ROOT / "tests" / "optimizer" / "data" / "jma_0410000_heavy_rain_forecast.json"
JST = ZoneInfo("Asia/Tokyo")
ISSUED, LIFTED = DATA / "jma_040000_heavy_rain_issued.json", DATA / "jma_040000_heavy_rain_lifted.json"
URL = "https://www.jma.go.jp/bosai/warning/data/warning/040000.json"


def cfg(**kw) -> JmaConfig:
    return JmaConfig(**{"enabled": True, "area_code": "0410000", "url": URL, **kw})


def serve(handler) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def test_http_is_refused_unless_allowed():
    with pytest.raises(ValidationError, match="https"):
        JmaConfig(url="http://jma.example/040000.json")
    with pytest.raises(ValidationError, match="https"):
        JmaConfig(url="ftp://jma.example/040000.json", allow_http=True)
    assert JmaConfig(url="http://127.0.0.1:8080/x.json", allow_http=True).allow_http


def test_an_oversized_document_is_refused_declared_or_streamed():
    body = ISSUED.read_bytes()
    limit = len(body) - 1
    with pytest.raises(JmaFetchError, match="exceeds"):
        fetch_warning_doc(cfg(max_bytes=limit), transport=serve(lambda r: httpx.Response(200, content=body)))

    def chunked(r):  # no Content-Length: the limit holds while reading
        return httpx.Response(200, content=iter([body[:1000], body[1000:]]))

    with pytest.raises(JmaFetchError, match="exceeds"):
        fetch_warning_doc(cfg(max_bytes=limit), transport=serve(chunked))
    assert fetch_warning_doc(cfg(max_bytes=len(body)), transport=serve(chunked))["reportDatetime"]


def test_redirects_stay_on_the_host_and_on_https():
    body = ISSUED.read_bytes()

    def handler(r: httpx.Request) -> httpx.Response:
        if r.url.path.endswith("/moved.json"):
            return httpx.Response(200, content=body)
        if r.url.host == "www.jma.go.jp" and r.url.path.endswith("/040000.json"):
            return httpx.Response(302, headers={"location": r.headers.get("x-to", "/moved.json")})
        return httpx.Response(200, content=b'{"areaTypes": []}')

    assert fetch_warning_doc(cfg(), transport=serve(handler))["reportDatetime"]  # same host: followed

    def elsewhere(to):
        return serve(lambda r: handler(httpx.Request(r.method, r.url, headers={"x-to": to})))

    with pytest.raises(JmaFetchError, match="another host"):
        fetch_warning_doc(cfg(), transport=elsewhere("https://evil.example/040000.json"))
    with pytest.raises(JmaFetchError, match="https"):
        fetch_warning_doc(cfg(), transport=elsewhere("http://www.jma.go.jp/moved.json"))

    def loop(r):
        return httpx.Response(301, headers={"location": "/again.json"})

    with pytest.raises(JmaFetchError, match="redirects"):
        fetch_warning_doc(cfg(), transport=serve(loop))


def test_freshness_bounds():
    doc = read_warning_doc(ISSUED)
    report = datetime.fromisoformat(doc["reportDatetime"])
    assert check_fresh(doc, cfg(max_age_h=6), report + timedelta(hours=5)) == report
    with pytest.raises(JmaStale, match="old"):
        check_fresh(doc, cfg(max_age_h=6), report + timedelta(hours=7))
    assert check_fresh(doc, cfg(), report - timedelta(hours=1)) == report  # clock skew: not refused


async def test_a_stale_lifting_document_does_not_lift_storm_mode(monkeypatch):
    config = updated(read_config(ROOT / "deploy" / "examples" / "community-centre.yaml"),
                     vpp={"jma": {"enabled": True, "url": URL, "area_code": "0410000", "max_age_h": 6}})
    issued, lifted = read_warning_doc(ISSUED), read_warning_doc(LIFTED)
    clock = {"now": datetime.fromisoformat(issued["reportDatetime"]) + timedelta(minutes=5)}
    served = {"doc": issued}
    monkeypatch.setattr(jma_watch, "fetch_warning_doc", lambda jc, timeout_s: copy.deepcopy(served["doc"]))
    policy = ReservePolicy(config.reserve, lambda: clock["now"])
    alarms = Alarms()

    async def replan():
        pass

    watch = JmaWatch(config, policy, alarms, lambda: clock["now"], replan, lambda *a, **k: None, poll_s=0.01)
    task = asyncio.create_task(watch.run())
    try:
        await _until(lambda: policy.storm.active)
        assert not alarms.active()
        # hours later a mirror serves the lifting bulletin, but that report is itself too old by now
        clock["now"] = datetime.fromisoformat(lifted["reportDatetime"]) + timedelta(hours=7)
        served["doc"] = lifted
        await _until(lambda: any(a.key == "jma" for a in alarms.active()))
        await asyncio.sleep(0.05)
        assert policy.storm.active and watch.doc is not None and watch.doc["reportDatetime"] == issued["reportDatetime"]
        assert "old" in next(a for a in alarms.active() if a.key == "jma").reason
        # a fresh lifting report does lift it
        clock["now"] = datetime.fromisoformat(lifted["reportDatetime"]) + timedelta(hours=1)
        await _until(lambda: not policy.storm.active)
        assert not any(a.key == "jma" for a in alarms.active())
    finally:
        task.cancel()


async def _until(cond, timeout=5.0):
    end = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < end, "condition not reached"
        await asyncio.sleep(0.01)


def poisoned(doc: dict) -> dict:
    """``doc`` with malformed codes: superscript two (``str.isdigit`` says yes), a letter, and
    bad time-series levels."""
    doc = copy.deepcopy(doc)
    doc["areaTypes"][1]["areas"][0]["warnings"] += [{"code": "²", "status": "警報から注意報"},
                                                    {"code": "0a", "status": "発表"}, {"code": "³³", "status": "発表"}]
    ts = doc["timeSeries"][0]["areaTypes"][0]["areas"][0]["warnings"]
    ts.append({"code": "²", "levels": [{"localAreas": [{"levels": ["²"] * 12}]}]})
    ts[0]["levels"][0]["localAreas"].append({"levels": ["³⁰"] * 12})
    return doc


def test_malformed_codes_are_skipped_with_a_warning(caplog):
    doc = read_warning_doc(FORECAST)
    with caplog.at_level(logging.WARNING, logger="vpp.market.jma"):
        got = parse_warnings(poisoned(doc))
    assert got == parse_warnings(doc) and "malformed warning code '²'" in caplog.text
    jc = cfg(url=None)
    assert warning_windows(poisoned(doc), jc) == warning_windows(doc, jc)


def test_malformed_codes_do_not_break_the_bid_export():
    config = updated(read_config(ROOT / "deploy" / "examples" / "community-centre.yaml"),
                     reserve={"storm_lead_h": 3.0}, vpp={"jma": {"area_code": "0410000"},
                                                        "capacity_price_per_kw": 2.0, "energy_price_per_kwh": 20.0})
    now, day = datetime(2026, 6, 21, 11, 30, tzinfo=JST), date(2026, 6, 22)
    clean = plan_bids(config, day, now=now, soc={"bat1": 0.6}, jma_doc=read_warning_doc(FORECAST))
    dirty = plan_bids(config, day, now=now, soc={"bat1": 0.6}, jma_doc=poisoned(read_warning_doc(FORECAST)))
    assert [s.removed for s in dirty.slots] == [s.removed for s in clean.slots] and any(s.removed for s in dirty.slots)
