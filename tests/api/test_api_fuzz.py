"""Property: no request body, however malformed, reaches the 500 handler."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
times = st.one_of(
    st.datetimes(min_value=datetime(2026, 11, 20), max_value=datetime(2026, 12, 10),
                 timezones=st.sampled_from([UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=5, minutes=45))]))
    .map(lambda t: t.isoformat()),
    st.datetimes(min_value=datetime(2026, 11, 25), max_value=datetime(2026, 11, 27)).map(
        lambda t: t.replace(minute=30 * (t.minute // 30), second=0, microsecond=0).isoformat() + "Z"),
    st.text(max_size=25),
    json_values,
)
amounts = st.one_of(st.floats(), st.integers(min_value=-10**20, max_value=10**20), st.text(max_size=5), st.none())
slot = st.fixed_dictionaries({"start": times, "capacity_kw": amounts},
                             optional={"extra": json_values})
offer = st.fixed_dictionaries(
    {"slots": st.lists(slot, max_size=5)},
    optional={"direction": st.sampled_from(["up", "down", "left", 3]), "product": json_values,
              "price_per_kwh": amounts},
)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(offer, json_values), award_slots=st.lists(slot, max_size=3), use_offer=st.booleans())
async def test_offer_and_award_bodies_never_cause_500(site, body, award_slots, use_offer):
    if not hasattr(site, "seed_offer"):
        r = await site.client.post("/api/v1/offers", headers=site.auth("operator", "seed"),
                                   json={"override": "award-side rules under test", "slots": [{"start": "2026-11-25T05:00:00Z", "capacity_kw": 50}]})
        site.seed_offer = r.json()["id"]
        site.n = 0
    site.n += 1
    # json.dumps emits NaN/Infinity tokens: the server must refuse them, not choke on them
    r = await site.client.post("/api/v1/offers", content=json.dumps(body),
                               headers={**site.auth("operator", f"o{site.n}"), "Content-Type": "application/json"})
    assert r.status_code in (201, 422), r.text
    award = {"offer_id": site.seed_offer if use_offer else str(site.n), "slots": award_slots}
    r = await site.client.post("/api/v1/awards", content=json.dumps(award),
                               headers={**site.auth("aggregator", f"a{site.n}"), "Content-Type": "application/json"})
    assert r.status_code in (201, 404, 422), r.text
