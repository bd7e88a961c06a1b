"""A backward wall-clock step must not replay a dispatch: started stays started, completed
stays completed."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vpp.market.dispatch import Dispatch, DispatchBook, DispatchRequest

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def dispatch() -> Dispatch:
    req = DispatchRequest("a", "delta", T0, T0 + timedelta(minutes=30), 5000.0)
    return Dispatch("d1", req, "up", "accepted", 5000.0, (), T0 - HOUR, T0 - HOUR)


def test_completed_dispatch_stays_completed_after_a_backward_step():
    d = dispatch()
    assert d.state(T0 - timedelta(minutes=5)) == "pending"
    assert d.active(T0 + timedelta(minutes=10))
    assert d.state(T0 + timedelta(minutes=31)) == "completed"
    back = T0 + timedelta(minutes=31) - HOUR  # the clock steps back 1 h
    assert d.state(back) == "completed" and not d.active(back)
    assert not d.active(T0 + timedelta(minutes=10))  # and when the window comes round again


def test_running_dispatch_does_not_go_back_to_pending():
    d = dispatch()
    assert d.active(T0 + timedelta(minutes=10))
    back = T0 + timedelta(minutes=10) - HOUR
    assert d.state(back) == "active" and d.active(back)


def test_book_does_not_reactivate_a_completed_dispatch():
    book = DispatchBook(batteries=lambda now: [])
    book.dispatches["d1"] = d = dispatch()
    assert book.active(T0 + timedelta(minutes=5)) is d
    assert book.active(T0 + timedelta(minutes=40)) is None
    assert book.active(T0 + timedelta(minutes=5)) is None


def test_backward_step_does_not_lengthen_a_running_dispatch():
    d = dispatch()  # 30 min from T0
    assert d.active(T0 + timedelta(minutes=10))
    back = T0 + timedelta(minutes=10) - HOUR
    assert d.active(back)  # still running: 20 min of it are left
    assert d.active(back + timedelta(minutes=19))
    assert not d.active(back + timedelta(minutes=21)) and d.state(back + timedelta(minutes=21)) == "completed"
    assert not d.active(T0 + timedelta(minutes=10))  # its wall-clock window does not replay it
