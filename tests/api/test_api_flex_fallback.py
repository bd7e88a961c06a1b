"""GET /api/v1/flexibility without a plan: the SoC fallback's kWh and max duration are the
real energy and hold time; under storm mode ``reason`` stays the code and ``reason_detail``
says why to operators and viewers, in a fixed sentence to aggregators (the storm's reason is
operator free text); an optional field: the schema stays backwards compatible."""
from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from tests.market.test_flex_fallback import T0, two_batteries
from vpp.api.app import SiteServices, create_app
from vpp.api.schemas.flexibility import AGGREGATOR_DETAIL
from vpp.control.loop import Controller
from vpp.market.flex_service import PlanFlexibility
from vpp.market.flexibility import BatteryFlexibility
from vpp.config import updated


async def test_flexibility_api_reports_soc_energy_and_the_storm_reason(tmp_path, key_file):
    path, keys = key_file
    cfg = updated(two_batteries(1800, tmp_path), api={"keys_path": str(path)})

    class Clock:
        def now(self):
            return T0

    ctl = Controller(cfg, clock=Clock())
    flex = PlanFlexibility(ctl, BatteryFlexibility(cfg, {"b1": 0.9, "b2": 0.45}.__getitem__))
    app = create_app(cfg, SiteServices(flex, lambda: T0, controller=ctl))
    q = {"start": "2026-11-25T05:00:00Z", "end": "2026-11-25T06:00:00Z"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                     headers={"X-API-Key": keys["aggregator"]}) as c:
            r = await c.get("/api/v1/flexibility", params=q)
            assert r.status_code == 200, r.text
            s = r.json()["slots"][0]
            # 1-h window: b1's 3.8 kWh spread over the hour: 3.8 kW for 3600 s
            assert (s["up_kw"], s["up_kwh"], s["up_max_duration_s"]) == pytest.approx((3.8, 3.8, 3600))
            assert (s["reason"], s["reason_detail"]) == ("", "")
            ctl.storm.on(T0, 0.9, T0 + timedelta(hours=3), "typhoon 24 landfall")
            s = (await c.get("/api/v1/flexibility", params=q)).json()["slots"][0]
            assert (s["available"], s["up_kw"], s["up_kwh"], s["reason"]) == (False, 0.0, 0.0, "storm_mode")
            # aggregators get a fixed sentence, not the operator's words
            assert s["reason_detail"] == AGGREGATOR_DETAIL["storm_mode"]
            viewer = {"X-API-Key": keys["viewer"]}
            s = (await c.get("/api/v1/flexibility", params=q, headers=viewer)).json()["slots"][0]
            assert (s["reason"], s["reason_detail"]) == ("storm_mode", "typhoon 24 landfall")
            spec = (await c.get("/api/v1/openapi.json")).json()
            props = spec["components"]["schemas"]["FlexSlotOut"]
            assert "reason_detail" in props["properties"] and "reason_detail" not in props.get("required", [])
