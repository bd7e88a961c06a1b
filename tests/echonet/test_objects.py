"""ECHONET device objects as YAML data: the shipped classes, value types, maker variants,
site files by path, and config validation of `protocol: echonet_lite` devices."""
from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from drivers.config import Device
from drivers.echonet.objects import ObjectError, available_objects, load_object


@pytest.mark.parametrize("name, eoj, epcs", [
    ("storage_battery", 0x027D, {0xDA, 0xEB, 0xEC, 0xAA, 0xAB, 0xE4, 0xE2, 0xD3, 0xCF, 0xA4, 0xA5, 0xC8, 0xC9,
                                 0xCE, 0xDB}),
    ("home_pv", 0x0279, {0xE0, 0xE1, 0xA0, 0xA1, 0xD1, 0xE8}),
    ("v2h", 0x027E, {0xDA, 0xC7, 0xE4, 0xC4, 0xEB, 0xEC}),
    ("smart_meter", 0x0288, {0xE7, 0xE0, 0xE3, 0xD3, 0xE1, 0xEA, 0xEB, 0xE2}),
    ("node_profile", 0x0EF0, {0xD6, 0x83, 0x8A}),
])
def test_shipped_objects_declare_the_standard_properties(name, eoj, epcs):
    o = load_object(name)
    assert o.class_code == eoj and epcs <= set(o.properties)
    assert set(o.poll) | set(o.slow) <= set(o.properties)


def test_every_property_line_has_a_comment():
    from drivers.echonet.objects import OBJECTS_DIR
    for f in [*OBJECTS_DIR.glob("*.yaml"), *OBJECTS_DIR.glob("quirks/*.yaml")]:
        for line in f.read_text().splitlines():
            if line.strip().startswith("0x") and "{" in line:
                assert "#" in line.split("}")[-1], f"{f.name}: {line.strip()[:20]} has no comment"


def test_value_types_round_trip_and_conventions():
    bat, meter = load_object("storage_battery"), load_object("smart_meter")
    d3 = bat.properties[0xD3]
    assert d3.decode(d3.encode(-1500)) == -1500 and d3.encode(-1) == b"\xff\xff\xff\xff"
    assert bat.canonical({"instant_power_w": 1500, "remaining_pct": 42}) == {"power_w": -1500.0, "soc": 0.42}
    ea = meter.properties[0xEA]
    ts = datetime(2026, 9, 15, 10, 30)
    assert ea.decode(ea.encode((ts, 12345))) == (ts, 12345)
    assert ea.decode(ea.encode((ts, None))) == (ts, None)  # 0xFFFFFFFE: no data
    e2 = meter.properties[0xE2]
    counts = tuple(range(48))
    assert e2.decode(e2.encode((1, counts))) == (1, counts)
    # cumulative energy: count × coefficient (D3) × unit (E1) kWh
    assert meter.canonical({"import_count": 1234, "coefficient": 10, "energy_unit_kwh": 0.1})["import_energy_wh"] \
        == pytest.approx(1234 * 10 * 0.1 * 1000)
    assert "import_energy_wh" not in meter.canonical({"import_count": 1234})  # unit unknown: no value
    with pytest.raises(ObjectError):
        bat.properties[0xDA].decode(b"\x99")
    with pytest.raises(ObjectError):
        bat.properties[0xE4].decode(b"\x01\x02")
    with pytest.raises(ObjectError):
        bat.properties[0xE4].encode(300)


def test_maker_variant_extends_the_standard_class():
    k = load_object("kaisei_battery")
    assert k.class_code == 0x027D and 0xF0 in k.properties and 0xDA in k.properties
    assert k.quirks.get_sna == {0xE2} and k.quirks.external_control == (0xF0, 0x01)
    assert k.quirks.mode_reverts_after_s == 600 and "kaisei_battery" in available_objects()


def test_site_object_files_by_path_and_clear_errors(tmp_path):
    f = tmp_path / "my_battery.yaml"
    f.write_text("extends: storage_battery\nclass: my_battery\nquirks: {get_sna: [0xE4]}\n")
    assert load_object(str(f)).quirks.get_sna == {0xE4}
    bad = tmp_path / "bad.yaml"
    bad.write_text("class: x\neoj: 0x027D\nkind: battery\nproperties:\n  0x20: {name: a, size: 1, type: uint}\n")
    with pytest.raises(ObjectError, match="0x20 outside"):
        load_object(str(bad))
    bad.write_text("class: x\neoj: 0x027D\nkind: battery\nproperties:\n  0xE0: {name: a, type: uint}\n")
    with pytest.raises(ObjectError, match="needs a size"):
        load_object(str(bad))
    with pytest.raises(ObjectError, match="unknown ECHONET object"):
        load_object("no_such_thing")
    cfg = Device.model_validate({"id": "b", "kind": "battery", "protocol": "echonet_lite", "register_map": str(f),
                                 "connection": {"host": "127.9.9.9"},
                                 "ratings": {"capacity_wh": 5000, "max_charge_w": 2000, "max_discharge_w": 2000}})
    assert cfg.register_map == str(f) and cfg.connection.port == 3610


def test_echonet_device_config_defaults_and_errors():
    d = Device.model_validate({"id": "m", "kind": "meter", "protocol": "echonet_lite",
                               "connection": {"host": "127.1.2.3", "instance": 2}})
    assert d.register_map == "smart_meter" and d.connection.type == "echonet_lite" and d.connection.instance == 2
    with pytest.raises(ValidationError, match="instance"):
        Device.model_validate({"id": "m", "kind": "meter", "protocol": "echonet_lite",
                               "connection": {"host": "127.1.2.3", "instance": 0}})
    with pytest.raises(ValidationError, match="does not match"):
        Device.model_validate({"id": "m", "kind": "meter", "register_map": "sdm630",
                               "connection": {"type": "echonet_lite", "host": "127.1.2.3"}})
