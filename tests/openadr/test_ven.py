"""Our VEN against an openleadr VTN on a loopback port: registration, a LOAD_DISPATCH event
opted in and held by the dispatch book, a storm-mode event opted out, telemetry reports."""
from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from functools import partial

from openleadr import OpenADRServer

from tests.api.conftest import site_config
from vpp.market.dispatch import BatteryState, DispatchBook, DispatchService
from vpp.market.flexibility import BatteryFlexibility
from vpp.market.ledger import Ledger
from vpp.market.offers import MarketService, SlotAmount
from vpp.openadr.ven import Ven


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(cond, timeout=15.0):
    for _ in range(int(timeout / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_load_dispatch_event_opt_in_book_and_telemetry(tmp_path):
    cfg = site_config(tmp_path)
    led = Ledger.open(tmp_path / "ledger.sqlite")
    soc = {"bat1": 0.6}
    storm = {"on": False}
    book = DispatchBook(lambda now: [BatteryState("bat1", soc["bat1"], 0.3, 1.0, 100000, 50000, 50000)])
    flex = BatteryFlexibility(cfg, soc.__getitem__)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    svc = DispatchService(led, book, flex, clock, storm=lambda: storm["on"], floor_soc=lambda: 0.3)
    market = MarketService(led, flex, clock)
    s1 = datetime.fromtimestamp((clock().timestamp() // 1800 + 2) * 1800, UTC)
    offer = market.submit_offer("op", "o1", [SlotAmount(s1, 40000), SlotAmount(s1 + timedelta(minutes=30), 40000)])
    award = market.award("agg", "a1", offer.record.id, [SlotAmount(s1, 20000), SlotAmount(s1 + timedelta(minutes=30), 20000)])
    assert award.record.payload["status"] == "accepted"

    port = free_port()
    vtn = OpenADRServer(vtn_id="TESTVTN", http_port=port, http_host="127.0.0.1",
                        requested_poll_freq=timedelta(seconds=1), show_fingerprint=False)
    opts: dict[str, str] = {}
    reports: dict[str, list] = {}

    async def on_reg(info):
        return "ven-site", "reg-1"

    async def on_update(data, measurement):
        reports.setdefault(measurement, []).extend(data)

    async def on_register_report(ven_id, resource_id, measurement, unit, scale, min_sampling_interval,
                                 max_sampling_interval):
        return partial(on_update, measurement=measurement), min_sampling_interval

    async def on_opt(ven_id, event_id, opt_type):
        opts[event_id] = opt_type

    vtn.add_handler("on_create_party_registration", on_reg)
    vtn.add_handler("on_register_report", on_register_report)
    # load −15 kW = 15 kW battery discharge in the first awarded slot
    e1 = vtn.add_event(ven_id="ven-site", signal_name="LOAD_DISPATCH", signal_type="delta",
                       intervals=[{"dtstart": s1, "duration": timedelta(minutes=30), "signal_payload": -15.0}],
                       callback=on_opt)
    await vtn.run()
    ven = Ven(svc, f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b", "ven-site", telemetry=lambda: (1234.0, soc["bat1"]),
              report_every=timedelta(seconds=1), show_fingerprint=False)
    try:
        await ven.start()
        await wait_for(lambda: e1 in opts)
        assert opts[e1] == "optIn"
        (did,) = ven.results[e1]["dispatches"]
        d = book.get(did)
        assert (d.status, d.accepted_w, d.request.award_id, d.request.kind) == ("accepted", 15000.0, award.record.id, "delta")
        assert book(s1 + timedelta(minutes=1))["bat1"].setpoint_w == 15000.0
        assert [r.payload["source"] for r in led.query(kinds=["dispatch"])] == ["openadr"]

        storm["on"] = True
        e2 = vtn.add_event(ven_id="ven-site", signal_name="LOAD_DISPATCH", signal_type="delta",
                           intervals=[{"dtstart": s1 + timedelta(minutes=30), "duration": timedelta(minutes=30),
                                       "signal_payload": -10.0}], callback=on_opt)
        await wait_for(lambda: e2 in opts)
        assert opts[e2] == "optOut" and ven.results[e2]["reasons"] == ["storm_mode"]

        await wait_for(lambda: reports.get("RealPower") and reports.get("soc"))
        assert reports["RealPower"][0][1] == 1234.0
        assert reports["soc"][0][1] == 60.0
    finally:
        await ven.stop()
        await vtn.stop()
        led.close()
