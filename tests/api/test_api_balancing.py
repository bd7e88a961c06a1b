"""``/balancing``: plan edits until gate closure, 409 after (recorded), plan file, imbalance."""
from __future__ import annotations


async def test_plan_edits_gate_closure_file_and_imbalance(site):
    # the site's clock: 2026-11-25 09:00 JST; コマ 20 (09:30) closed at 08:30, コマ 30 (14:30) is open
    op = site.auth("operator", "e1")
    v = {"X-API-Key": site.keys["viewer"]}
    edit = {"day": "2026-11-25", "reason": "event at the hall", "koma": [{"koma": 30, "demand_kwh": 12.5, "supply_kwh": 0}]}
    r = await site.client.put("/api/v1/balancing/plan", json=edit, headers=op)
    assert r.status_code == 200 and r.json()["changed"] == [30] and r.json()["revision"] == 1, r.text
    late = dict(edit, koma=[{"koma": 20, "demand_kwh": 1, "supply_kwh": 0}, {"koma": 31, "demand_kwh": 1, "supply_kwh": 0}])
    r = await site.client.put("/api/v1/balancing/plan", json=late, headers=op)
    assert r.status_code == 409 and "コマ 20 of 2026-11-25 is frozen" in r.json()["detail"]
    refused = [x for x in site.records("audit") if x.payload["action"] == "balancing_plan_refused"]
    assert len(refused) == 1 and refused[0].payload["koma"] == [20]
    r = await site.client.get("/api/v1/balancing/plan", params={"day": "2026-11-25"}, headers=v)
    koma = {k["koma"]: k for k in r.json()["koma"]}
    assert koma[30]["demand_kwh"] == 12.5 and koma[31]["demand_kwh"] is None  # nothing of the refused edit
    assert koma[20]["frozen"] and not koma[30]["frozen"]
    r = await site.client.get("/api/v1/balancing/plan.csv", params={"day": "2026-11-25"}, headers=v)
    assert r.status_code == 200 and "2026/11/25,30,14:30,15:00,12.500,0.000,1,未確定" in r.content.decode("cp932")
    r = await site.client.get("/api/v1/balancing/imbalance", params={"day": "2026-11-25"}, headers=v)
    body = r.json()
    assert r.status_code == 200 and body["kpis"]["yen"] is None  # no imbalance price file configured
    assert body["kpis"]["shortage_kwh"] == 0 and body["kpis"]["surplus_kwh"] == 12.5  # nothing metered yet
    # roles and bad bodies
    r = await site.client.put("/api/v1/balancing/plan", json=edit, headers=site.auth("viewer", "e2"))
    assert r.status_code == 403
    r = await site.client.post("/api/v1/balancing/plan/revise", params={"day": "2026-11-25"}, headers=op)
    assert r.status_code == 409  # no controller plan behind this API
    for bad in (dict(edit, koma=[{"koma": 49, "demand_kwh": 1, "supply_kwh": 0}]),
                dict(edit, koma=[{"koma": 30, "demand_kwh": -1, "supply_kwh": 0}]), dict(edit, reason="")):
        r = await site.client.put("/api/v1/balancing/plan", json=bad, headers=site.auth("operator", "e3"))
        assert r.status_code == 422, r.text
