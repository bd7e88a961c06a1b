"""The reserve in force lives in a ReservePolicy, never in the config: an operator's floor and
storm mode reach the controller's floors, are recorded in the ledger and replayed from it,
and the loaded config object stays as it was (it cannot even be assigned to)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from vpp.control.alarms import Alarms
from vpp.control.loop import Controller
from vpp.control.reserve import floor_sizing
from vpp.control.reserve_policy import ReservePolicy
from vpp.errors import ServiceError
from vpp.market.ledger import Ledger

from .test_loop import T0, Clock, Table, cfg


def policy_and_controller(tmp_path):
    config = cfg()
    led = Ledger.open(tmp_path / "ledger.sqlite", clock=lambda: T0)
    policy = ReservePolicy(config.reserve, lambda: T0, ledger=led)
    ctl = Controller(config, fleet=Table(), clock=Clock(T0), storm=policy.storm, reserve_source=policy.reserve)
    return config, led, policy, ctl


def test_operator_floor_reaches_the_controller_and_leaves_the_config_alone(tmp_path):
    config, led, policy, ctl = policy_and_controller(tmp_path)
    before = config.model_dump()
    bat = ctl.batteries[0]
    # the config's 30 % is below what 400 W × 72 h needs in usable energy (≈ 36.8 %)
    sized = floor_sizing(config.reserve, bat.ratings).floor
    assert sized > 0.30 and ctl.base_floor(bat) == pytest.approx(sized)
    new = policy.set_reserve("op-1", floor_pct=45.0)
    assert new["floor_pct"] == 45.0 and policy.floor_pct == 45.0
    assert ctl.base_floor(bat) == pytest.approx(0.45) and ctl.floor_at(bat, [T0])[0] == pytest.approx(0.45)
    assert config.reserve.floor_pct == 30.0 and config.model_dump() == before
    with pytest.raises(ValidationError, match="frozen"):
        config.reserve.floor_pct = 45.0
    # storm mode is the controller's: on and off through the policy, who set it remembered
    policy.set_reserve("op-1", storm=True, storm_deadline=T0 + timedelta(hours=6), reason="typhoon")
    assert ctl.storm.active and policy.storm_set_by == "op-1"
    assert ctl.floor_at(bat, [T0 + timedelta(hours=6)])[0] == pytest.approx(0.9)
    policy.set_reserve("op-1", storm=False)
    assert not ctl.storm.active and policy.storm_set_by is None
    recs = led.query(kinds=["policy_change"])
    assert [r.payload["new"]["floor_pct"] for r in recs] == [45.0, 45.0, 45.0]
    assert [r.payload["new"]["storm"] for r in recs] == [False, True, False]
    led.close()


@pytest.mark.parametrize("change, why", [
    ({"floor_pct": 120.0}, "between 0 and 100"),
    ({"storm": True}, "needs a deadline"),
    ({"storm": True, "storm_deadline": T0 - timedelta(minutes=1)}, "in the future"),
    ({"storm": True, "storm_deadline": (T0 + timedelta(hours=1)).replace(tzinfo=None)}, "time zone"),
    ({"storm": True, "storm_deadline": T0 + timedelta(hours=1), "storm_target_pct": -5.0}, "between 0 and 100"),
])
def test_invalid_changes_change_nothing(tmp_path, change, why):
    _, led, policy, ctl = policy_and_controller(tmp_path)
    with pytest.raises(ServiceError, match=why):
        policy.set_reserve("op-1", **{"floor_pct": 50.0, **change})  # a valid floor with it is not applied either
    assert policy.floor_pct == 30.0 and not ctl.storm.active and not led.query(kinds=["policy_change"])
    led.close()


def test_restore_replays_the_newest_record_never_below_the_config_floor(tmp_path):
    _, led, policy, _ = policy_and_controller(tmp_path)
    policy.set_reserve("op-1", floor_pct=50.0, storm=True, storm_deadline=T0 + timedelta(hours=3), reason="typhoon")
    fresh = ReservePolicy(cfg().reserve, lambda: T0)
    got = fresh.restore(led, Alarms())
    assert fresh.floor_pct == 50.0 and fresh.storm.active and fresh.storm.reason == "typhoon"
    assert fresh.storm_set_by == "op-1" and got["recorded_by"] == "op-1" and got["config_floor_pct"] == 30.0
    policy.set_reserve("op-1", floor_pct=20.0, storm=False)
    low = ReservePolicy(cfg().reserve, lambda: T0)
    low.restore(led, Alarms())
    assert low.floor_pct == 30.0 and not low.storm.active  # safety first: the config's floor stands
    assert [r.payload["action"] for r in led.query(kinds=["audit"])] == ["reserve_restored"] * 2
    led.close()
