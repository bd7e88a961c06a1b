"""The telemetry field table and everything it drives: field lists, storage limits, device checks."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from drivers import fields as ft
from drivers.device import make_device
from drivers.modbus import ModbusLink
from drivers.poller import ConnectionPoller
from drivers.protocols import FIELDS, DeviceKind, Quality, Snapshot
from drivers.registermap import available_maps, load_map
from drivers.server import ModbusImageServer
from vpp.config import Device
from vpp.storage.validate import LIMITS, sanitize

#: The table as a reviewer reads it: name, unit, plausible range, kinds reporting it.
EXPECTED = [
    # name                 unit        lo    hi     kinds
    ("power_w",            "W",        -1e8, 1e8,  {"pv", "battery", "ev_charger", "meter"}),
    ("energy_wh",          "Wh",       0.0,  1e13, {"pv"}),
    ("power_limit_w",      "W",        0.0,  1e8,  {"pv"}),
    ("soc",                "fraction", 0.0,  1.0,  {"battery"}),
    ("capacity_wh",        "Wh",       0.0,  1e9,  {"battery"}),
    ("setpoint_w",         "W",        -1e8, 1e8,  {"battery"}),
    ("charge_energy_wh",   "Wh",       0.0,  1e13, {"battery"}),
    ("discharge_energy_wh", "Wh",      0.0,  1e13, {"battery"}),
    ("state",              "",         1.0,  6.0,  {"ev_charger"}),
    ("plugged",            "",         0.0,  1.0,  {"ev_charger"}),
    ("current_limit_a",    "A",        0.0,  1000.0, {"ev_charger"}),
    ("session_energy_wh",  "Wh",       0.0,  1e9,  {"ev_charger"}),
    ("import_energy_wh",   "Wh",       0.0,  1e13, {"meter"}),
    ("export_energy_wh",   "Wh",       0.0,  1e13, {"meter"}),
    ("voltage_v",          "V",        0.0,  2000.0, {"meter"}),
    ("frequency_hz",       "Hz",       0.0,  100.0, {"meter"}),
]
SUFFIX_UNIT = {"_wh": "Wh", "_w": "W", "_v": "V", "_a": "A", "_hz": "Hz"}


def test_table_rows():
    got = [(f.name, f.unit, f.lo, f.hi, set(f.kinds)) for f in ft.TABLE]
    assert got == EXPECTED
    assert len(ft.BY_NAME) == len(ft.TABLE)


@pytest.mark.parametrize("f", ft.TABLE, ids=lambda f: f.name)
def test_row_is_consistent(f):
    assert f.lo < f.hi and f.plausible(f.lo) and f.plausible(f.hi) and not f.plausible(float("nan"))
    assert set(f.kinds) <= {k.value for k in DeviceKind} and set(f.per_kind) <= set(f.kinds)
    suffix = next((s for s in SUFFIX_UNIT if f.name.endswith(s)), None)
    if suffix is not None:  # the name says the unit
        assert f.unit == SUFFIX_UNIT[suffix]
    if f.unit:  # every meaning states the unit in brackets
        tag = "[fraction" if f.unit == "fraction" else f"[{f.unit}]"
        assert all(tag in f.describe(k) for k in f.kinds), f.name


def test_field_lists_per_kind_come_from_the_table():
    assert set(FIELDS) == set(DeviceKind)
    for kind, names in FIELDS.items():
        assert names == ft.fields_of(kind.value)
        assert "power_w" in names
    assert FIELDS[DeviceKind.BATTERY]["power_w"] == "AC power [W], > 0 discharge, < 0 charge"
    assert FIELDS[DeviceKind.METER]["power_w"] == "active power [W], > 0 import"
    assert list(FIELDS[DeviceKind.METER]) == ["power_w", "import_energy_wh", "export_energy_wh",
                                              "voltage_v", "frequency_hz"]


@pytest.mark.parametrize("name", available_maps())
def test_map_registers_use_the_table_units(name):
    m = load_map(name)
    units = {r.name: r.unit for r in m.registers.values() if not r.hidden}
    units |= {v.name: v.unit for v in m.virtuals.values()}
    for field, unit in units.items():
        if field in ft.BY_NAME:
            assert unit == ft.BY_NAME[field].unit, f"{name}: {field}"


def test_storage_limits_are_the_table_ranges():
    assert LIMITS == ft.plausible_ranges()
    assert ft.plausible_range("rating_w") == ft.UNLISTED_RANGE == (-1e15, 1e15)


def _snap(**values) -> Snapshot:
    return Snapshot("d", DeviceKind.METER, datetime(2026, 6, 1, tzinfo=timezone.utc), values)


@pytest.mark.parametrize("f", ft.TABLE, ids=lambda f: f.name)
def test_sanitizer_keeps_the_range_and_drops_beyond_it(f):
    kept, reasons = sanitize(_snap(**{f.name: f.lo}))
    assert not reasons and kept.values[f.name] == f.lo
    kept, reasons = sanitize(_snap(**{f.name: f.hi}))
    assert not reasons and kept.values[f.name] == f.hi
    beyond = f.hi + max(1.0, abs(f.hi))
    cleaned, reasons = sanitize(_snap(**{f.name: beyond, "other_x": 1.0}))
    assert f.name not in cleaned.values and cleaned.values == {"other_x": 1.0}
    assert cleaned.quality is Quality.BAD and reasons == [f"{f.name}={beyond:g} outside [{f.lo:g}, {f.hi:g}]"]


async def test_device_marks_a_soc_beyond_the_table_range_bad():
    rmap = load_map("sunspec_storage")
    srv = ModbusImageServer()
    srv.add_device(1, rmap.encode({"power_w": 0.0, "soc": 1.2}))
    await srv.start()
    cfg = Device(id="b", kind="battery", register_map="sunspec_storage",
                 connection={"host": "127.0.0.1", "port": srv.port, "device_id": 1},
                 ratings={"capacity_wh": 10000, "max_charge_w": 5000, "max_discharge_w": 5000},
                 timeout_s=0.3, retries=0)
    link = ModbusLink(cfg.connection, 0.3)
    try:
        snap, = await ConnectionPoller(link, [make_device(cfg, link)]).poll_once()
        assert snap.quality is Quality.BAD and snap.reason == "soc 1.2 outside 0..1"
        srv.update(1, rmap.encode({"power_w": 0.0, "soc": 1.0}))
        snap, = await ConnectionPoller(link, [make_device(cfg, link)]).poll_once()
        assert snap.quality is Quality.GOOD and snap.values["soc"] == 1.0
    finally:
        link.close()
        await srv.stop()
