"""``GET /bill``: any past day or month, per home; roles from the route table; bad queries 4xx."""
from __future__ import annotations

import pytest


async def test_bill_for_viewers_not_aggregators_and_bad_queries(site):
    v = {"X-API-Key": site.keys["viewer"]}
    r = await site.client.get("/api/v1/bill", params={"period": "month", "day": "2026-10-03"}, headers=v)
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["period"] == "month" and b["slots"] == 31 * 48 and b["start"] == "2026-09-30T15:00:00+00:00"
    assert b["actual"]["total"] == pytest.approx(0.0) and b["price_version"].startswith("tou:")
    r = await site.client.get("/api/v1/bill", headers={"X-API-Key": site.keys["aggregator"]})
    assert r.status_code == 403
    for params, status in (({"day": "2026-11-26"}, 422), ({"period": "year"}, 422), ({"day": "26/11"}, 422),
                           ({"home": "h999"}, 404), ({"home": "../x"}, 422)):
        r = await site.client.get("/api/v1/bill", params=params, headers=v)
        assert r.status_code == status, (params, r.text)
