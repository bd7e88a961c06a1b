"""Each quirk real stations have, and that the central system copes (real WebSockets, loopback)."""
from __future__ import annotations

import pytest

from simulators.ocpp_station import Car, Quirks
from tests.testkit.wait import wait_until


async def test_zero_limit_rejected_pauses_by_stopping_the_transaction(park):
    s = await park.station("q-zero", quirks=Quirks(zero_limit_rejected=True), car=Car())
    cs, dev = park.cs, park.cs.device("q-zero")
    st = cs.stations["q-zero"]
    await wait_until(lambda: st.session_energy_wh() > 0, 5)
    before = st.session_energy_wh()
    await dev.set_current_limit(0.0)
    assert s.model.profiles[-1]["limit"] == 0.0  # it was asked for 0 first and refused it
    await wait_until(lambda: s.model.tx_id is None and st.transaction_id is None, 5)
    snap = cs.latest("q-zero")
    assert snap.values["plugged"] == 1.0 and snap.values["current_limit_a"] == 0.0
    assert snap.values["power_w"] == 0.0 and snap.values["session_energy_wh"] >= before
    await dev.set_current_limit(0.0)  # stays paused, nothing sent
    await dev.set_current_limit(10.0)  # resumes with the same tag, a new transaction
    await wait_until(lambda: s.model.tx_id is not None and st.transaction_id == s.model.tx_id, 5)
    await dev.set_current_limit(10.0)
    assert s.model.limit_a() == 10.0
    assert st.session_energy_wh() >= before  # the plug-in's energy carried over the pause


async def test_tx_profile_outside_transaction_falls_back_to_default(park):
    """The station ended the transaction without telling (lost StopTransaction): the TxProfile
    is refused, the default profile takes the limit instead, nothing raised."""
    s = await park.station("cp16", car=Car())
    st = park.cs.stations["cp16"]
    s.model.end()  # the station's transaction is gone; the central system still thinks it runs
    await park.cs.device("cp16").set_current_limit(20.0)
    assert [p["purpose"] for p in s.model.profiles[-2:]] == ["TxProfile", "TxDefaultProfile"]
    assert s.model.default_limit_a == 6.0  # the default never exceeds the safe limit
    assert st.counters["tx_profile_refused"] == 1
    assert park.cs.latest("cp16").values["current_limit_a"] == 6.0


@pytest.mark.parametrize("sid", ["q-ext", "q-ext-201"])
async def test_external_control_disabled_uses_plain_limit_and_alarms(park, sid):
    s = await park.station(sid, quirks=Quirks(external_control_disabled=True), car=Car())
    dev = park.cs.device(sid)
    # at boot it refused the default profile: the safe limit went in as a plain limit instead
    await wait_until(lambda: s.model.plain_limit_a == 6.0, 5)
    assert "TxDefaultProfile" in park.alarms.active[f"ocpp:{sid}"]
    await dev.set_current_limit(12.0)
    assert s.model.plain_limit_a == 12.0 and s.model.limit_a() == 12.0
    assert "plain limit" in park.alarms.active[f"ocpp:{sid}"]  # the alarm stays while it refuses profiles
    assert park.cs.latest(sid).values["current_limit_a"] == 12.0
    n = len(s.model.profiles)
    await dev.set_current_limit(8.0)  # known to refuse profiles: straight to the plain limit
    assert s.model.plain_limit_a == 8.0 and len(s.model.profiles) == n


async def test_profile_without_transaction_id_is_ignored_so_the_csms_names_it(park):
    s = await park.station("cp201", car=Car())
    cp = park.cs.connection("cp201")
    # the quirk itself: an untargeted TxProfile is accepted but does not change this session
    from ocpp.v201 import call
    res = await cp.call(call.SetChargingProfile(evse_id=1, charging_profile={
        "id": 9, "stack_level": 1, "charging_profile_purpose": "TxProfile", "charging_profile_kind": "Absolute",
        "charging_schedule": [{"id": 1, "charging_rate_unit": "A",
                               "charging_schedule_period": [{"start_period": 0, "limit": 20.0}]}]}))
    assert res.status == "Accepted" and s.model.limit_a() == 6.0
    await park.cs.device("cp201").set_current_limit(20.0)
    assert s.model.profiles[-1]["tx"] == s.model.tx_id and s.model.limit_a() == 20.0


async def test_reboot_with_new_transaction_id(park):
    s = await park.station("q-reboot", car=Car())
    st = park.cs.stations["q-reboot"]
    old_tx = st.transaction_id
    await wait_until(lambda: st.session_energy_wh() > 0, 5)
    before = st.session_energy_wh()
    await s.reboot()
    await wait_until(lambda: st.transaction_id not in (None, old_tx) and st.transaction_id == s.model.tx_id, 5)
    assert st.counters["boots"] == 2
    await park.cs.device("q-reboot").set_current_limit(9.0)
    assert s.model.profiles[-1]["tx"] == st.transaction_id and s.model.limit_a() == 9.0
    assert st.session_energy_wh() >= before  # one plug-in, two transactions


async def test_meter_values_with_missing_measurands_keep_last_energy(park):
    s = await park.station("q-meter", car=Car())
    st = park.cs.stations["q-meter"]
    await wait_until(lambda: st.readings.get("energy_wh", 0) > 0, 5)
    s.quirks.missing_measurands = True
    energy = st.readings["energy_wh"]
    await park.cs.device("q-meter").set_current_limit(20.0)
    await wait_until(lambda: st.counters.get("meter_partial", 0) >= 2, 5)
    snap = park.cs.latest("q-meter")
    assert snap.values["power_w"] == pytest.approx(20 * 200, rel=0.01)  # power still follows
    assert st.readings["energy_wh"] == energy and snap.values["session_energy_wh"] > 0  # not zeroed


async def test_station_that_never_answers_times_out_with_alarm_and_recovers(park):
    s = await park.station("q-mute", car=Car())
    st = park.cs.stations["q-mute"]
    s.quirks.never_answers = True
    with pytest.raises(TimeoutError):
        await park.cs.device("q-mute").set_current_limit(10.0)
    assert "no answer" in park.alarms.active["ocpp:q-mute"] and st.counters["timeouts"] == 1
    assert park.cs.latest("q-mute").values["current_limit_a"] == 6.0  # unchanged: nothing half-applied
    s.quirks.never_answers = False
    await park.cs.device("q-mute").set_current_limit(10.0)  # not stuck: the next call goes through
    assert s.model.limit_a() == 10.0 and "ocpp:q-mute" not in park.alarms.active


async def test_refused_profiles_without_fallback_raise_and_alarm(park):
    from vpp.csms.charger import ProfileRejected

    s = await park.station("cp16", quirks=Quirks(external_control_disabled=True), car=Car())
    await wait_until(lambda: "ocpp:cp16" in park.alarms.active, 5)
    assert "no fallback_limit_key" in park.alarms.active["ocpp:cp16"]
    with pytest.raises(ProfileRejected):  # the loop's write alarm; nothing recorded as in force
        await park.cs.device("cp16").set_current_limit(12.0)
    assert s.model.limit_a() == 32.0 and park.cs.latest("cp16").values.get("current_limit_a") is None
