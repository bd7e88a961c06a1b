"""The edge's command rules (pure): lease, order, ratings, reserve; the envelope's validation."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from vpp.bus.envelope import BusMessageError, Envelope, decode
from vpp.edge.commands import CommandBook, TownCapacity, check_order, check_policy, check_power_command
from vpp.market.dispatch_records import BatteryState

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=timezone.utc)


def cap(soc: float = 0.6, floor: float = 0.3, n: int = 2) -> TownCapacity:
    # n batteries of 10 kWh, 5 kW each
    return TownCapacity([BatteryState(f"b{i}", soc, floor, 1.0, 10_000.0, 5000.0, 5000.0) for i in range(n)], 30.0)


def cmd(kind: str, body: dict, *, seq: int = 1, lease_s: float = 600, now: datetime = NOW) -> Envelope:
    return Envelope(f"c{seq}-{kind}", "t1", kind, seq, now, body, now + timedelta(seconds=lease_s))


def test_expired_lease_is_never_applied_even_if_newer():
    env = cmd("plans", {"start": NOW.isoformat(), "slot_s": 900, "battery_w": [1000.0]}, lease_s=60)
    out = check_order(env, NOW + timedelta(seconds=61), newest_seq=-1)
    assert out is not None and out.status == "expired" and not out.applies


def test_older_or_equal_seq_is_superseded():
    env = cmd("dispatches", {}, seq=4)
    assert check_order(env, NOW, newest_seq=4).status == "superseded"
    assert check_order(env, NOW, newest_seq=3) is None


def test_out_of_range_setpoint_is_refused_before_any_write():
    env = cmd("dispatches", {"start": NOW.isoformat(), "end": (NOW + timedelta(hours=1)).isoformat(),
                             "setpoint_w": 10_001.0})
    out, held = check_power_command(env, NOW, cap())
    assert (out.status, out.reason, held) == ("rejected", "out_of_range", None)


def test_discharge_beyond_the_reserve_is_capped_to_the_floor():
    # 2 × 10 kWh at 60 % over a 30 % floor: 6 kWh above the floor; 4 slots of 15 min at 8 kW = 8 kWh
    env = cmd("plans", {"start": NOW.isoformat(), "slot_s": 900, "battery_w": [8000.0] * 4})
    out, held = check_power_command(env, NOW, cap())
    assert out.status == "partial" and out.reason == "reserve_floor"
    energy = sum(w * 0.25 for w in held.battery_w)
    assert energy == pytest.approx(6000.0)
    assert held.battery_w[:3] == (8000.0, 8000.0, 8000.0) and held.battery_w[3] == pytest.approx(0.0)


def test_charge_in_a_plan_refills_the_headroom_for_later_discharge():
    env = cmd("plans", {"start": NOW.isoformat(), "slot_s": 3600, "battery_w": [-4000.0, 9000.0]})
    out, held = check_power_command(env, NOW, cap())
    assert out.status == "applied" and held.battery_w == (-4000.0, 9000.0)


def test_policy_may_raise_but_never_lower_the_towns_floor():
    assert check_policy(cmd("policy", {"floor_pct": 50.0}), NOW, cap()).status == "applied"
    out = check_policy(cmd("policy", {"floor_pct": 20.0}), NOW, cap())
    assert (out.status, out.reason) == ("rejected", "below_local_floor")
    past = check_policy(cmd("policy", {"storm": True, "storm_deadline": (NOW - timedelta(hours=1)).isoformat()}),
                        NOW, cap())
    assert past.status == "rejected"


def test_book_follows_the_lease_then_hands_back_to_the_local_source():
    env = cmd("plans", {"start": NOW.isoformat(), "slot_s": 900, "battery_w": [2000.0] * 8}, lease_s=600)
    _, held = check_power_command(env, NOW, cap())
    local = object()
    book = CommandBook(lambda now: cap().batteries, fallback=lambda now: {"b0": local})
    book.hold(held)
    props = book(NOW + timedelta(seconds=60))
    assert sum(p.setpoint_w for p in props.values()) == pytest.approx(2000.0)
    assert all(p.reason.startswith("central plan") for p in props.values())
    assert book(NOW + timedelta(seconds=600)) == {"b0": local}  # lease over: the town's own source
    assert book.held == {}


@pytest.mark.parametrize("doc, field", [
    (b"not json", "message"),
    (b'{"id": "", "town": "t1", "kind": "plans", "seq": 1, "issued_at": "2026-12-05T09:00:00Z"}', "id"),
    (b'{"id": "x", "town": "t.1", "kind": "plans", "seq": 1, "issued_at": "2026-12-05T09:00:00Z"}', "town"),
    (b'{"id": "x", "town": "t1", "kind": "bogus", "seq": 1, "issued_at": "2026-12-05T09:00:00Z"}', "kind"),
    (b'{"id": "x", "town": "t1", "kind": "plans", "seq": -1, "issued_at": "2026-12-05T09:00:00Z"}', "seq"),
    (b'{"id": "x", "town": "t1", "kind": "plans", "seq": 1, "issued_at": "2026-12-05T09:00:00Z"}', "lease_until"),
    (b'{"id": "x", "town": "t1", "kind": "status", "seq": 1, "issued_at": "2026-12-05T09:00:00"}', "issued_at"),
])
def test_malformed_envelope_names_the_field(doc, field):
    with pytest.raises(BusMessageError, match=f"^{field}"):
        decode(doc)


def test_envelope_round_trip():
    env = cmd("policy", {"floor_pct": 40.0})
    back = decode(env.encode())
    assert back == env and back.headers() == {"Nats-Msg-Id": env.id}


def test_malformed_command_body_names_the_field():
    env = cmd("plans", {"start": NOW.isoformat(), "slot_s": 900, "battery_w": [1.0, "x"]})
    with pytest.raises(BusMessageError, match="battery_w"):
        check_power_command(env, NOW, cap())
