"""The settlement job (:func:`vpp.market.settlement_job.settle_due`): a dispatch's performance
is recorded once its instructed slots are over, exactly once, and never for a rejected one;
computing performance (what the API shows) writes nothing."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from tests.testkit.sites import make_site
from vpp.config import parse_config
from vpp.market.dispatch import Dispatch, DispatchRequest
from vpp.market.ledger import Ledger
from vpp.market.settlement_job import (
    PerformanceUnavailable,
    dispatch_performance,
    due_at,
    recorded,
    settle_due,
)

W0 = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
W1 = W0 + timedelta(hours=1)


def config():
    return make_site("flat-20k")


class Store:
    """The grid meter read 2 kW import in every slot [kWh per 30-min slot = 1.0]."""

    def energy_slots(self, device, *, start, end, slot_s):
        idx = pd.date_range(start, end, freq=f"{slot_s}s", inclusive="left", tz="UTC")
        return pd.DataFrame({device: 1.0}, index=idx)


def dispatch(did: str, *, end=W1, status="accepted", cancelled_at=None) -> Dispatch:
    req = DispatchRequest("award-1", "delta", W0, end, 1000.0)
    return Dispatch(did, req, "up", status, 1000.0, (), W0 - timedelta(hours=1), W0 - timedelta(hours=1),
                    cancelled_at=cancelled_at)


@pytest.fixture
def ledger(tmp_path):
    led = Ledger.open(tmp_path / "ledger.sqlite", clock=lambda: W1)
    yield led
    led.close()


def freeze_plan(ledger: Ledger, did: str, w: float = 3000.0) -> None:
    """The plan baseline frozen at acceptance: 3 kW import planned per slot."""
    ledger.record("baseline_plan", "agg", {"dispatch_id": did, "import_w": {
        (W0 + timedelta(minutes=30 * k)).isoformat(): w for k in range(2)}}, ref=did)


def test_recorded_once_when_the_last_slot_is_over(ledger):
    d = dispatch("d1", end=W0 + timedelta(minutes=45))  # ends mid-slot: due when that slot is over
    freeze_plan(ledger, "d1")
    cfg, store = config(), Store()
    assert due_at(d) == W1
    assert settle_due(ledger, store, cfg, W1 - timedelta(seconds=1), [d]) == []
    (rec,) = settle_due(ledger, store, cfg, W1, [d])
    assert (rec.kind, rec.ref, rec.actor, rec.algorithm_version) == ("performance", "d1", "settlement", "plan-baseline/1")
    # 3 kW planned − 2 kW metered = 1 kW delivered up in each slot
    assert rec.payload["performance"]["delivered_kwh"] == pytest.approx(1.0)
    assert settle_due(ledger, store, cfg, W1 + timedelta(hours=1), [d]) == []
    assert len(ledger.query(kinds=["performance"])) == 1 and recorded(ledger, "d1").id == rec.id


def test_reading_performance_writes_nothing(ledger):
    d = dispatch("d1")
    freeze_plan(ledger, "d1")
    report = dispatch_performance(d, ledger, Store(), config())
    assert report.method == "plan" and report.record is None
    assert report.performance.delivered_kwh == pytest.approx(1.0)
    assert ledger.query(kinds=["performance"]) == []


def test_cancelled_is_due_after_the_slot_it_was_cancelled_in_and_rejected_never(ledger):
    cancelled = dispatch("d2", cancelled_at=W0 + timedelta(minutes=10))
    rejected = dispatch("d3", status="rejected")
    for did in ("d2", "d3"):
        freeze_plan(ledger, did)
    assert due_at(cancelled) == W0 + timedelta(minutes=30)
    (rec,) = settle_due(ledger, Store(), config(), W0 + timedelta(minutes=30), [cancelled, rejected])
    assert rec.ref == "d2"
    # the slot after the cancellation carries no instruction
    assert [s["instructed_w"] for s in rec.payload["performance"]["slots"]] == [1000.0, 0.0]
    with pytest.raises(PerformanceUnavailable):
        dispatch_performance(rejected, ledger, Store(), config())


def test_a_dispatch_without_a_baseline_waits_for_the_next_run(ledger):
    d = dispatch("d4")  # no frozen plan, no plan, no metered history: no baseline yet
    assert settle_due(ledger, None, config(), W1, [d]) == []
    assert ledger.query(kinds=["performance"]) == []


def echonet_config():
    """One low-voltage home whose grid meter speaks ECHONET Lite."""
    return parse_config({
        "site": {"name": "t", "latitude": 38.33, "longitude": 140.85, "timezone": "Asia/Tokyo"},
        "grid": {"import_limit_w": 20000, "export_limit_w": 10000},
        "tariff": {"periods": [{"name": "flat", "start": "00:00", "end": "00:00", "buy_per_kwh": 30}]},
        "devices": [{"id": "m1", "kind": "meter", "role": "grid", "protocol": "echonet_lite",
                     "register_map": "smart_meter", "connection": {"host": "127.0.0.1"}}],
    })


def test_an_echonet_meter_is_settled_from_its_half_hour_readings(ledger):
    from vpp.market.half_hour_metering import HalfHourLog

    d = dispatch("d1")
    freeze_plan(ledger, "d1")
    cfg, log = echonet_config(), HalfHourLog()
    with pytest.raises(PerformanceUnavailable, match="30-minute readings"):
        dispatch_performance(d, ledger, Store(), cfg)  # never integrated power instead
    local = pd.Timestamp(W0).tz_convert("Asia/Tokyo").tz_localize(None).to_pydatetime()
    for k, wh in enumerate((10_000.0, 10_600.0, 11_400.0)):  # 0.6 and 0.8 kWh in the two slots
        log.record("m1", {"import": (local + timedelta(minutes=30 * k), wh),
                          "export": (local + timedelta(minutes=30 * k), 0.0)})
    rep = dispatch_performance(d, ledger, Store(), cfg, half_hour=log)
    # 3 kW planned − (1.2 kW, 1.6 kW) metered from EA differences
    assert rep.payload()["performance"]["delivered_kwh"] == pytest.approx((1.8 + 1.4) / 2)
    log.readings["m1"][local + timedelta(minutes=60)] = (9_000.0, 0.0)  # going backwards: not used
    rep = dispatch_performance(d, ledger, Store(), cfg, half_hour=log).payload()["performance"]
    assert rep["missing_slots"] == [(pd.Timestamp(W0) + pd.Timedelta(minutes=30)).isoformat()]
    assert rep["delivered_kwh"] == pytest.approx(1.8 / 2)  # the flagged slot delivers nothing
