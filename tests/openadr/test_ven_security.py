"""The VEN against a real openleadr VTN on loopback, as an attacker and a restart would test it:

* mutual TLS over https (a CA, the VTN's server certificate, the VEN's client certificate, the
  VTN's signing fingerprint; all made in the test with trustme): events flow; a VEN that does
  not trust the VTN's CA never registers;
* with the VTN's fingerprint configured, events altered or stripped of their signature on the
  way (a proxy in the middle) are refused: no dispatch, no opt; the genuine ones then pass;
* the event → dispatch map is rebuilt from the ledger: a VEN restarted between an event and
  its cancel still ends the dispatch;
* an import failure of OpenADR support or a VEN that cannot start raises the ``openadr`` alarm.
"""
from __future__ import annotations

import asyncio
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import trustme
from aiohttp import web
from openleadr.utils import certificate_fingerprint

from tests.api.conftest import site_config
from tests.openadr.conftest import LoopbackVtn, free_port, wait_for
from vpp.config import OpenAdrConfig
from vpp.control.alarms import Alarms
from vpp.market.dispatch import BatteryState, DispatchBook, DispatchService
from vpp.market.flexibility import BatteryFlexibility
from vpp.market.ledger import Ledger
from vpp.market.offers import MarketService, SlotAmount
from vpp.openadr.supervisor import VenSupervisor
from vpp.openadr.ven import Ven

SLOT = timedelta(minutes=30)
# servers on loopback and polls at 1 s: ~10 s together, kept out of `make test-fast`
pytestmark = pytest.mark.slow


@dataclass
class Pki:
    ca: str
    vtn_cert: str
    vtn_key: str
    ven_cert: str
    ven_key: str
    vtn_fingerprint: str
    ven_fingerprint: str
    other_ca: str  # a CA that issued nothing the VTN presents


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA(key_type=trustme.KeyType.RSA)  # RSA: what openleadr signs messages with by default
    vtn = ca.issue_cert("127.0.0.1", "localhost", key_type=trustme.KeyType.RSA)
    ven = ca.issue_cert("ven-site", key_type=trustme.KeyType.RSA)
    paths = {}
    for name, blob in [("ca", ca.cert_pem), ("vtn_cert", vtn.cert_chain_pems[0]), ("vtn_key", vtn.private_key_pem),
                       ("ven_cert", ven.cert_chain_pems[0]), ("ven_key", ven.private_key_pem),
                       ("other_ca", trustme.CA(key_type=trustme.KeyType.RSA).cert_pem)]:
        paths[name] = str(d / f"{name}.pem")
        blob.write_to_path(paths[name])
    return Pki(**paths, vtn_fingerprint=certificate_fingerprint(vtn.cert_chain_pems[0].bytes()),
               ven_fingerprint=certificate_fingerprint(ven.cert_chain_pems[0].bytes()))


class Market:
    """A site with one battery, its ledger in ``path`` and an award over two slots from ``s1``."""

    def __init__(self, tmp_path, s1: datetime | None = None) -> None:
        self.cfg = site_config(tmp_path)
        self.path = tmp_path / "ledger.sqlite"
        self.clock = lambda: datetime.now(UTC)
        self.s1 = s1 or datetime.fromtimestamp((self.clock().timestamp() // 1800 + 2) * 1800, UTC)
        self.open()
        market = MarketService(self.ledger, self.flex, self.clock)
        offer = market.submit_offer("op", "o1", [SlotAmount(self.s1, 40000), SlotAmount(self.s1 + SLOT, 40000)],
                                     override="award-side rules under test")
        award = market.award("agg", "a1", offer.record.id, [SlotAmount(self.s1, 20000), SlotAmount(self.s1 + SLOT, 20000)])
        assert award.record.payload["status"] == "accepted"

    def open(self) -> None:
        """(Re)open the ledger and rebuild the book from it, as a restarted service does."""
        self.ledger = Ledger.open(self.path)
        self.book = DispatchBook(lambda now: [BatteryState("bat1", 0.6, 0.3, 1.0, 100000, 50000, 50000)])
        self.book.load(self.ledger)
        self.flex = BatteryFlexibility(self.cfg, {"bat1": 0.6}.__getitem__)
        self.service = DispatchService(self.ledger, self.book, self.flex, self.clock, floor_soc=lambda: 0.3)

    def ven(self, url: str, **kw) -> Ven:
        return Ven(self.service, url, "ven-site", telemetry=lambda: (0.0, 0.6), report_every=timedelta(seconds=1),
                   show_fingerprint=False, **kw)

    def dispatch_values(self) -> list[float]:
        return [r.payload["request"]["value"] for r in self.ledger.query(kinds=["dispatch"])
                if r.payload["action"] == "create"]


async def test_mutual_tls_with_ca_client_cert_and_vtn_fingerprint(tmp_path, pki):
    m = Market(tmp_path)
    vtn = LoopbackVtn(server_kw=dict(cert=pki.vtn_cert, key=pki.vtn_key, http_cert=pki.vtn_cert,
                                     http_key=pki.vtn_key, http_ca_file=pki.ca,
                                     fingerprint_lookup=lambda ven_id: pki.ven_fingerprint))
    assert vtn.url.startswith("https://")
    e1 = vtn.add_load_dispatch(m.s1, SLOT, -15.0)
    await vtn.server.run()
    ven = m.ven(vtn.url, cert=pki.ven_cert, key=pki.ven_key, ca_file=pki.ca, vtn_fingerprint=pki.vtn_fingerprint)
    stranger = m.ven(vtn.url, cert=pki.ven_cert, key=pki.ven_key, ca_file=pki.other_ca,
                     vtn_fingerprint=pki.vtn_fingerprint)
    try:
        await ven.start()
        assert ven.client.registration_id is not None
        await wait_for(lambda: e1 in vtn.opts)
        assert vtn.opts[e1] == "optIn"
        (did,) = ven.results[e1]["dispatches"]
        assert (m.book.get(did).status, m.book.get(did).accepted_w) == ("accepted", 15000.0)
        # a VEN that does not trust the VTN's CA never gets as far as registering
        await asyncio.wait_for(stranger.start(), 30)
        assert stranger.client.registration_id is None
    finally:
        await ven.stop()
        await vtn.server.stop()
        m.ledger.close()


async def test_client_cert_without_a_ca_file_uses_the_system_cas(tmp_path, pki):
    """The TypeError openleadr raised with cert/key but no CA: now the system CAs verify the
    server, which they cannot for a test CA: the VEN reports no registration, no exception."""
    m = Market(tmp_path)
    vtn = LoopbackVtn(server_kw=dict(http_cert=pki.vtn_cert, http_key=pki.vtn_key, http_ca_file=pki.ca,
                                     fingerprint_lookup=lambda ven_id: pki.ven_fingerprint))
    await vtn.server.run()
    ven = m.ven(vtn.url, cert=pki.ven_cert, key=pki.ven_key)
    try:
        await asyncio.wait_for(ven.start(), 30)
        assert ven.client.registration_id is None
    finally:
        await vtn.server.stop()
        m.ledger.close()


class TamperingProxy:
    """Plain HTTP in the middle between the VEN and the VTN. ``mode``: ``pass``; ``tamper``
    (event payload values changed, signature kept); ``strip`` (the signature removed).
    ``altered`` counts event messages changed, ``polls`` the VEN's polls."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.port = upstream.rstrip("/"), free_port()
        self.mode, self.altered, self.polls = "pass", 0, 0
        self.app = web.Application()
        self.app.router.add_post("/{tail:.*}", self.forward)
        self.runner = web.AppRunner(self.app)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/OpenADR2/Simple/2.0b"

    async def start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        await self.session.close()
        await self.runner.cleanup()

    async def forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        tail = request.match_info["tail"].removeprefix("OpenADR2/Simple/2.0b").lstrip("/")
        async with self.session.post(f"{self.upstream}/{tail}", data=body,
                                     headers={"content-type": "application/xml"}) as r:
            status, text = r.status, await r.text()
        if b"oadrPoll" in body:
            self.polls += 1
        if "oadrDistributeEvent" in text and self.mode != "pass":
            if self.mode == "tamper":  # −15 kW becomes −5 kW, the signature left as it was
                text, n = re.subn(r"(<ei:value>)-15\.0(</ei:value>)", r"\g<1>-5.0\g<2>", text)
            else:
                text, n = re.subn(r"<ds:Signature\b.*?</ds:Signature>", "", text, flags=re.S)
            assert n, text[:2000]
            self.altered += 1
        return web.Response(status=status, text=text, content_type="application/xml")


async def test_unsigned_or_forged_events_are_refused_when_signing_is_required(tmp_path, pki):
    m = Market(tmp_path)
    vtn = LoopbackVtn(server_kw=dict(cert=pki.vtn_cert, key=pki.vtn_key))  # signs every message
    await vtn.server.run()
    proxy = TamperingProxy(vtn.url)
    await proxy.start()
    ven = m.ven(proxy.url, vtn_fingerprint=pki.vtn_fingerprint)
    try:
        await ven.start()  # signed registration messages pass the proxy untouched
        assert ven.client.registration_id is not None
        for mode, start in [("tamper", m.s1), ("strip", m.s1 + SLOT)]:
            proxy.mode = mode
            altered = proxy.altered
            vtn.add_load_dispatch(start, SLOT, -15.0)
            await wait_for(lambda: proxy.altered > altered)
            polls = proxy.polls
            await wait_for(lambda: proxy.polls >= polls + 2)  # the VEN went on polling, having dropped it
            assert m.dispatch_values() == [] and vtn.opts == {} and ven.results == {}, mode
        # the same events, unaltered: accepted as sent (−15 kW load = 15 kW discharge)
        proxy.mode = "pass"
        vtn.server.events_updated["ven-site"] = True
        await wait_for(lambda: len(vtn.opts) == 2)
        assert set(vtn.opts.values()) == {"optIn"}
        assert m.dispatch_values() == [15000.0, 15000.0]
    finally:
        await ven.stop()
        await proxy.stop()
        await vtn.server.stop()
        m.ledger.close()


async def test_a_cancel_after_a_restart_ends_the_dispatch(tmp_path):
    m = Market(tmp_path)
    vtn = LoopbackVtn()
    e1 = vtn.add_load_dispatch(m.s1, SLOT, -15.0)
    await vtn.server.run()
    ven = m.ven(vtn.url)
    try:
        await ven.start()
        await wait_for(lambda: e1 in vtn.opts)
        (did,) = ven.results[e1]["dispatches"]
        await ven.stop()
        m.ledger.close()
        # the site restarts; meanwhile the VTN cancels the event
        vtn.cancel(e1)
        m.open()
        assert m.book.get(did).cancelled_at is None
        assert m.book(m.s1 + timedelta(minutes=1))["bat1"].setpoint_w == 15000.0
        ven = m.ven(vtn.url)
        assert ven.results[e1] == {"modification": 0, "dispatches": [did], "opt": "optIn", "reasons": []}
        await ven.start()
        await wait_for(lambda: m.book.get(did).cancelled_at is not None)
        assert m.book(m.s1 + timedelta(minutes=1)) == {}
        cancels = [r for r in m.ledger.query(kinds=["dispatch"]) if r.payload["action"] == "cancel"]
        assert [(r.ref, r.payload["source"]) for r in cancels] == [(did, "openadr")]
    finally:
        await ven.stop()
        await vtn.server.stop()
        m.ledger.close()


def _supervisor(tmp_path, alarms: Alarms, **oc) -> VenSupervisor:
    m = Market(tmp_path)
    cfg = OpenAdrConfig(enabled=True, vtn_url=f"http://127.0.0.1:{free_port()}/OpenADR2/Simple/2.0b",
                        poll_interval_s=0.2, **oc)
    return VenSupervisor(cfg, "ven-site", m.service, lambda: (0.0, 0.5), alarms, lambda: datetime.now(UTC))


async def test_openadr_not_installed_raises_the_alarm(tmp_path, monkeypatch):
    alarms = Alarms()
    sup = _supervisor(tmp_path, alarms)
    monkeypatch.delitem(sys.modules, "vpp.openadr.ven", raising=False)
    monkeypatch.setitem(sys.modules, "openleadr", None)  # `import openleadr` raises ImportError
    await asyncio.wait_for(sup.run(), 10)  # returns: nothing to retry
    a = alarms.get("openadr")
    assert a is not None and a.severity == "critical" and "openadr` extra" in a.reason, a


async def test_a_ven_that_cannot_start_raises_the_alarm_and_retries(tmp_path):
    alarms = Alarms()
    missing = str(tmp_path / "missing.pem")
    sup = _supervisor(tmp_path, alarms, cert=missing, key=missing)
    task = asyncio.create_task(sup.run())
    try:
        await wait_for(lambda: alarms.get("openadr") is not None, timeout=10)
        a = alarms.get("openadr")
        assert a.severity == "critical" and "FileNotFoundError" in a.reason, a
        await asyncio.sleep(0.5)
        assert not task.done()  # still trying: the certificate may appear
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
