"""GET /baseline (High 4 of 5) from metered history in the embedded store."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from drivers.protocols import DeviceKind, Quality, Snapshot
from tests.api.conftest import site_config
from vpp.api.app import SiteServices, create_app
from vpp.config import EmbeddedStorage
from vpp.market.flexibility import BatteryFlexibility
from vpp.storage import open_store

EVENT = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)  # Wednesday 17:00 JST


def iso(t):
    return t.isoformat().replace("+00:00", "Z")


@pytest.mark.timeout(60)
async def test_high4of5_from_metered_history(tmp_path, key_file):
    path, keys = key_file
    cfg = site_config(tmp_path, keys_path=path)
    cfg.devices.append(type(cfg.devices[0]).model_validate(
        {"id": "meter1", "kind": "meter", "role": "grid", "register_map": "sdm630"}))
    store = open_store(EmbeddedStorage(path=str(tmp_path / "m.sqlite")), site=cfg.site.name, connect=False)
    store.open()
    # 12 days of readings every 5 min; each past day's demand is 1 kW × its day number, so
    # the 4 highest of the last 5 weekdays are known
    snaps = []
    t = EVENT.replace(hour=0) - timedelta(days=12)
    while t < EVENT + timedelta(hours=1):
        snaps.append(Snapshot("meter1", DeviceKind("meter"), t, {"power_w": 1000.0 * t.day}, Quality.GOOD, ""))
        t += timedelta(minutes=5)
    store.write(snaps)
    app = create_app(cfg, SiteServices(BatteryFlexibility(cfg, lambda _id: 0.6), lambda: EVENT, store=store))
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get("/api/v1/baseline", headers={"X-API-Key": keys["aggregator"]},
                            params={"start": iso(EVENT), "end": iso(EVENT + timedelta(hours=1)), "method": "high4of5"})
            assert r.status_code == 200, r.text
            b = r.json()
            assert b["method"] == "high4of5" and len(b["slots"]) == 2
            # weekdays before Wed 25 Nov (JST): 24, 20, 19, 18, 17 → top 4 = 24, 20, 19, 18
            days = sorted(int(d[-2:]) for d in b["days"])
            assert days == [18, 19, 20, 24], b["days"]
            unadjusted = (24 + 20 + 19 + 18) / 4
            # same-day adjustment: the event day reads 25 kW, the baseline days average 20.25 kW
            assert b["adjustment_kw"] == pytest.approx(25 - unadjusted, abs=0.05)
            assert all(s["baseline_kw"] == pytest.approx(25.0, abs=0.05) for s in b["slots"])
            r = await c.get("/api/v1/baseline", headers={"X-API-Key": keys["aggregator"]},
                            params={"start": iso(EVENT), "end": iso(EVENT + timedelta(hours=1)), "method": "plan"})
            assert r.status_code == 409  # no controller, no plan
    finally:
        store.close()
