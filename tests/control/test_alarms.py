from datetime import datetime, timedelta, timezone

from vpp.control.alarms import Alarms

T0 = datetime(2026, 11, 22, tzinfo=timezone.utc)


def test_raise_refresh_clear():
    seen = []
    a = Alarms()
    a.subscribe(seen.append)
    a.raise_("plan", "solver failed", T0)
    a.raise_("plan", "solver failed", T0 + timedelta(minutes=1))  # same: no event
    assert len(seen) == 1 and a.get("plan").raised_at == T0
    a.raise_("plan", "plan stale", T0 + timedelta(minutes=2), "critical")
    assert len(seen) == 2 and a.get("plan").raised_at == T0 and a.get("plan").severity == "critical"
    c = a.clear("plan", T0 + timedelta(minutes=3), "plan ok")
    assert not a.is_active("plan") and c.cleared_at == T0 + timedelta(minutes=3) and not c.active
    assert a.clear("plan", T0) is None
    assert [x.key for x in a.history()] == ["plan"] and a.active() == []
