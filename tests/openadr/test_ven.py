"""Our VEN against an openleadr VTN on a loopback port: registration, a LOAD_DISPATCH event
opted in and held by the dispatch book, a storm-mode event opted out, telemetry reports."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.api.conftest import site_config
from tests.openadr.conftest import LoopbackVtn, wait_for
from vpp.market.dispatch import BatteryState, DispatchBook, DispatchService
from vpp.market.flexibility import BatteryFlexibility
from vpp.market.ledger import Ledger
from vpp.market.offers import MarketService, SlotAmount
from vpp.openadr.ven import Ven


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
    offer = market.submit_offer("op", "o1", [SlotAmount(s1, 40000), SlotAmount(s1 + timedelta(minutes=30), 40000)],
                                override="award-side rules under test")
    award = market.award("agg", "a1", offer.record.id, [SlotAmount(s1, 20000), SlotAmount(s1 + timedelta(minutes=30), 20000)])
    assert award.record.payload["status"] == "accepted"

    vtn = LoopbackVtn()
    # load −15 kW = 15 kW battery discharge in the first awarded slot
    e1 = vtn.add_load_dispatch(s1, timedelta(minutes=30), -15.0)
    await vtn.server.run()
    ven = Ven(svc, vtn.url, "ven-site", telemetry=lambda: (1234.0, soc["bat1"]),
              report_every=timedelta(seconds=1), show_fingerprint=False)
    try:
        await ven.start()
        await wait_for(lambda: e1 in vtn.opts)
        assert vtn.opts[e1] == "optIn"
        (did,) = ven.results[e1]["dispatches"]
        d = book.get(did)
        assert (d.status, d.accepted_w, d.request.award_id, d.request.kind) == ("accepted", 15000.0, award.record.id, "delta")
        assert book(s1 + timedelta(minutes=1))["bat1"].setpoint_w == 15000.0
        assert [r.payload["source"] for r in led.query(kinds=["dispatch"])] == ["openadr"]

        storm["on"] = True
        e2 = vtn.add_load_dispatch(s1 + timedelta(minutes=30), timedelta(minutes=30), -10.0)
        await wait_for(lambda: e2 in vtn.opts)
        assert vtn.opts[e2] == "optOut" and ven.results[e2]["reasons"] == ["storm_mode"]

        await wait_for(lambda: vtn.reports.get("RealPower") and vtn.reports.get("soc"))
        assert vtn.reports["RealPower"][0][1] == 1234.0
        assert vtn.reports["soc"][0][1] == 60.0
    finally:
        await ven.stop()
        await vtn.server.stop()
        led.close()
