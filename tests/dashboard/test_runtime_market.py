"""The running site's market API is wired to its controller: flexibility comes from the plan
and an aggregator's dispatch reaches the controller's battery decisions."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

SLOT = timedelta(minutes=30)


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def slot_start(t: datetime) -> datetime:
    return t - timedelta(seconds=t.timestamp() % SLOT.total_seconds())


@pytest.fixture()
def agg(site):
    with httpx.Client(base_url=site.url + "api/v1", timeout=30,
                      headers={"X-API-Key": site.keys["aggregator"]}) as c:
        yield c


def wait_for_plan(site, timeout_s: float = 30.0) -> None:
    end = time.monotonic() + timeout_s
    while site.rt.controller.plan is None and time.monotonic() < end:
        time.sleep(0.2)
    assert site.rt.controller.plan is not None, "no plan after 30 s"


def test_flexibility_comes_from_the_plan(site, agg):
    wait_for_plan(site)
    a = slot_start(datetime.now(timezone.utc)) + SLOT
    r = agg.get("/flexibility", params={"start": iso(a), "end": iso(a + 2 * SLOT)})
    assert r.status_code == 200, r.text
    slots = r.json()["slots"]
    assert len(slots) == 2 and [s["source"] for s in slots] == ["plan", "plan"], slots
