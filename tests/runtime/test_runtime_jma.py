"""The running site watches JMA warnings (a recorded document served over loopback HTTP):
a heavy-rain warning for the site's area raises the reserve (storm mode, reason in the status,
flexibility and bids gone), its lifting reverts it, both changes are in the ledger; a failed
fetch raises the ``jma`` alarm and keeps the last document. Bid prices posted through the API
are the ones the running site's bid export uses."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from .sites import EXAMPLE, SiteThread

from tests.testkit.wait import wait_until_sync

DATA = Path(__file__).resolve().parents[1] / "market" / "data"
JST = timezone(timedelta(hours=9))
#: inside the recorded episode: 大雨警報 issued for 仙台市 at 16:27 JST
START = datetime(2026, 9, 18, 16, 30, tzinfo=JST)
SLOT = timedelta(minutes=30)


class Jma:
    """A tiny HTTP server answering every GET with ``self.body`` (``None``: 500)."""

    def __init__(self) -> None:
        self.body: bytes | None = None
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if owner.body is None:
                    self.send_error(500, "JMA down")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *a) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/bosai/warning/data/warning/040000.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def serve(self, name: str | None) -> None:
        self.body = None if name is None else (DATA / name).read_bytes()


@pytest.fixture(scope="module")
def jma_site(tmp_path_factory):
    from vpp.api.auth import create_key
    from vpp.commands.demo import simulated_runtime
    from vpp.config import read_config, updated

    jma = Jma()
    jma.serve("jma_040000_heavy_rain_issued.json")
    jma.thread.start()
    cfg = updated(read_config(EXAMPLE), vpp={"jma": {"enabled": True, "url": jma.url, "allow_http": True, "area_code": "0410000"}})  # 仙台市
    rt = simulated_runtime(cfg, speed=60.0, sim_start=START, data_dir=tmp_path_factory.mktemp("jma"), jma_poll_s=0.2)
    keys = {role: create_key(rt.config.api.keys_path, role, f"t-{role}")[0] for role in ("operator", "aggregator")}
    st = SiteThread(rt)
    st.start()
    st.keys, st.jma = keys, jma
    try:
        yield st
    finally:
        st.stop()
        jma.server.shutdown()
        jma.server.server_close()


def client(site, role: str) -> httpx.Client:
    return httpx.Client(base_url=site.rt.url + "api/v1", timeout=30, headers={"X-API-Key": site.keys[role]})


def wait(cond, what: str, timeout_s: float = 15.0):
    return wait_until_sync(cond, timeout_s, interval_s=0.1, what=what)


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def next_slot(t: datetime) -> datetime:
    return t - timedelta(seconds=t.timestamp() % SLOT.total_seconds()) + SLOT


def test_jma_warning_raises_and_lifting_reverts_the_reserve(jma_site):
    rt = jma_site.rt
    tomorrow = (START + timedelta(days=1)).date().isoformat()
    with client(jma_site, "operator") as op, client(jma_site, "aggregator") as agg:
        st = wait(lambda: (s := op.get("/status").json())["battery"]["storm"]["active"] and s, "JMA storm mode")
        storm = st["battery"]["storm"]
        assert "大雨警報 (03)" in storm["reason"] and "0410000" in storm["reason"], storm
        assert "暴風警報" not in storm["reason"]  # 気仙沼市's 暴風警報 is another area
        assert storm["target_pct"] == rt.config.reserve.storm_target_pct
        assert st["jma"]["raise"] and st["jma"]["report"] == "2026-09-18T16:27:00+09:00", st["jma"]
        wait(lambda: rt.controller.plan is not None, "a plan")
        a = next_slot(rt.now())
        flex = agg.get("/flexibility", params={"start": iso(a), "end": iso(a + 2 * SLOT)}).json()["slots"]
        assert [(s["available"], s["reason"], s["up_kw"]) for s in flex] == [(False, "storm_mode", 0.0)] * 2
        bids = agg.get("/bids", params={"day": tomorrow}).json()
        assert bids["slots"] and all(s["removed"] and "JMA" in s["reason"] and s["up_kw"] == 0 for s in bids["slots"])
        assert rt.jma.doc is not None and bids["storm"] and "大雨警報" in bids["storm"]

        jma_site.jma.serve("jma_040000_heavy_rain_lifted.json")
        st = wait(lambda: not (s := op.get("/status").json())["battery"]["storm"]["active"] and s, "storm mode off")
        assert st["jma"]["report"] == "2026-09-19T05:12:00+09:00" and not st["jma"]["raise"]
        a = next_slot(rt.now())
        flex = agg.get("/flexibility", params={"start": iso(a), "end": iso(a + 2 * SLOT)}).json()["slots"]
        assert all(s["available"] for s in flex) and any(s["up_kw"] > 0 or s["down_kw"] > 0 for s in flex), flex
        bids = agg.get("/bids", params={"day": tomorrow}).json()
        assert not any(s["removed"] for s in bids["slots"]) and bids["storm"] is None, bids["storm"]

        # JMA unreachable: alarm, the last document (lifted) is kept, the reserve stays as it is
        jma_site.jma.serve(None)
        wait(lambda: rt.controller.alarms.get("jma") is not None, "the jma alarm")
        assert "500" in rt.controller.alarms.get("jma").reason
        st = op.get("/status").json()
        assert st["jma"]["report"] == "2026-09-19T05:12:00+09:00" and not st["battery"]["storm"]["active"]
        jma_site.jma.serve("jma_040000_heavy_rain_lifted.json")
        wait(lambda: rt.controller.alarms.get("jma") is None, "the jma alarm to clear")

        led = op.get("/ledger/export", params={"start": iso(START - timedelta(days=1)),
                                               "end": iso(rt.now() + timedelta(days=1)), "kind": "policy_change"})
        assert led.status_code == 200, led.text
        recs = [r for r in led.json()["records"] if r["actor"] == "jma"]
        assert [r["payload"]["new"]["storm"] for r in recs] == [True, False], recs
        assert "大雨警報 (03) in force" in recs[0]["payload"]["reason"]
        assert "no reserve-raising warning" in recs[1]["payload"]["reason"]


def test_posted_bid_prices_reach_the_running_bid_export(jma_site):
    """POST /bids/prices on the running site → GET /bids prices from them (not the config
    defaults: the example's sample capacity price)."""
    rt = jma_site.rt
    wait(lambda: not rt.controller.storm.active and rt.controller.plan is not None, "no storm and a plan")
    day = (rt.now().astimezone(JST) + timedelta(days=1)).date()
    t0 = datetime(day.year, day.month, day.day, tzinfo=JST)
    with client(jma_site, "aggregator") as agg:
        before = agg.get("/bids", params={"day": day.isoformat()}).json()
        assert before["prices_source"] == "config"
        assert {s["capacity_price_up"] for s in before["slots"]} == {rt.config.vpp.capacity_price_per_kw}
        slots = [{"start": (t0 + k * SLOT).isoformat(), "capacity_up": 50.0, "capacity_down": 40.0}
                 for k in range(48)]
        r = agg.post("/bids/prices", json={"day": day.isoformat(), "slots": slots},
                     headers={"Idempotency-Key": "jma-prices-1"})
        assert r.status_code == 201, r.text
        after = agg.get("/bids", params={"day": day.isoformat()}).json()
    assert after["prices_source"] == "posted"
    assert {s["capacity_price_up"] for s in after["slots"]} == {50.0}
    assert after["expected_revenue"] > max(before["expected_revenue"], 0.0)
    assert any(s["up_kw"] > 0 or s["down_kw"] > 0 for s in after["slots"])
