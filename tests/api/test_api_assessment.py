"""Assessment II over HTTP: operator and aggregator only, JSON and CSV, bad windows 422
naming the field; a dispatch without a baseline yet is listed as skipped, not an error."""
from __future__ import annotations

from datetime import timedelta

from tests.api.conftest import T0
from tests.api.test_api_dispatch import S1, award, dispatch, iso

Q = f"start={iso(T0)}&end={iso(T0 + timedelta(hours=6))}"


async def test_assessment_roles_windows_and_csv(site):
    a = await award(site, kw=20.0)
    d = (await dispatch(site, a["id"], value_kw=10.0)).json()
    for path in ("/api/v1/assessment", "/api/v1/assessment.csv"):
        assert (await site.client.get(f"{path}?{Q}", headers=site.auth("viewer"))).status_code == 403
        assert (await site.client.get(f"{path}?{Q}")).status_code == 401
        for bad in (f"start={iso(S1)}&end={iso(S1)}",                      # end not after start
                    f"start={iso(S1)}&end={iso(S1 + timedelta(days=400))}",  # too long
                    "start=2026-11-25T00:00:00&end=2026-11-25T06:00:00",     # no offset
                    f"start={iso(S1)}"):                                     # no end
            r = await site.client.get(f"{path}?{bad}", headers=site.auth("operator"))
            assert r.status_code == 422, (bad, r.text)
            assert any("start" in e["loc"] or "end" in e["loc"] for e in r.json()["detail"]), r.text
    # before the dispatch's コマ are over: nothing yet
    body = (await site.client.get(f"/api/v1/assessment?{Q}", headers=site.auth("aggregator"))).json()
    assert body == {"rows": [], "skipped": []}
    site.clock.t = S1 + timedelta(hours=2)
    r = await site.client.get(f"/api/v1/assessment?{Q}", headers=site.auth("operator"))
    assert r.status_code == 200, r.text
    b = r.json()
    # this API site runs without a store: no baseline, said so per dispatch (the arithmetic is
    # tested over a real store in tests/market/test_assessment.py)
    assert b["rows"] == [] and b["skipped"][0]["dispatch_id"] == d["id"]
    assert "no metered history" in b["skipped"][0]["reason"]
    c = await site.client.get(f"/api/v1/assessment.csv?{Q}", headers=site.auth("aggregator"))
    assert c.status_code == 200 and c.headers["content-type"].startswith("text/csv")
    lines = c.text.splitlines()
    assert lines[0].startswith("dispatch_id,award_id,direction,day,koma") and len(lines) == 1 + len(b["rows"])
