"""Register maps: every map loads, encode → decode round-trips, SunSpec chain layout, hex tables."""
import pytest

from drivers.protocols import FIELDS
from drivers.registermap import MapError, available_maps, load_map, parse_map
from drivers.sunspec_models import model_def

SAMPLES = {
    "sunspec_inverter": {"power_w": 4321.0, "energy_wh": 1234567.0, "voltage_v": 230.4,
                         "current_a": 18.79, "frequency_hz": 50.02, "rating_w": 50000.0,
                         "power_limit_w": 25000.0, "power_limit_revert_s": 120.0,
                         "power_limit_enabled": 1.0, "operating_state": 4.0},
    "sunspec_storage": {"power_w": -3210.0, "soc": 0.537, "capacity_wh": 100000.0,
                        "setpoint_w": -3200.0, "setpoint_enabled": 1.0, "setpoint_revert_s": 300.0,
                        "charge_energy_wh": 1500.0, "discharge_energy_wh": 900.0,
                        "frequency_hz": 49.987, "max_charge_w": 50000.0, "max_discharge_w": 50000.0},
    "sunspec_meter": {"power_w": -12345.0, "import_energy_wh": 98765.0, "export_energy_wh": 4321.0,
                      "voltage_v": 229.8, "frequency_hz": 50.01},
    "sdm630": {"power_w": -1500.25, "import_energy_wh": 123456.0, "export_energy_wh": 7890.0,
               "voltage_v": 231.5, "frequency_hz": 50.0},
    "evse_phoenix": {"state": 3.0, "power_w": 7360.0, "current_limit_a": 16.0,
                     "session_energy_wh": 4200.0, "energy_wh": 654321.0, "voltage_v": 230.0},
}


def test_every_map_has_samples():
    assert sorted(SAMPLES) == available_maps()


@pytest.mark.parametrize("name", available_maps())
def test_map_loads_and_uses_canonical_names(name):
    m = load_map(name)
    canonical = set(FIELDS[m.kind])
    assert "power_w" in m.fields
    # every canonical field the samples exercise is a canonical name of the kind
    assert {k for k in SAMPLES[name] if k in canonical} <= set(m.fields)
    for r in m.registers.values():
        assert r.manual and (r.hidden or r.comment), r.name
    blocks = m.blocks()
    assert all(1 <= b.count <= m.max_block for b in blocks)


@pytest.mark.parametrize("name", available_maps())
def test_encode_decode_round_trip(name):
    m = load_map(name)
    values = SAMPLES[name]
    img = m.encode(values)
    assert all(0 <= w <= 0xFFFF for w in img.values())
    out = m.decode(img)
    for k, v in values.items():
        assert out[k] == pytest.approx(v, rel=1e-6, abs=1e-6), k
    # what was not given decodes to None (sentinel) or its declared default, never garbage
    for r in m.registers.values():
        if not r.hidden and r.name not in values and r.default is None and r.type != "string" \
                and not r.type.startswith("acc"):
            assert out[r.name] is None, r.name


def test_sunspec_chain_layout():
    m = load_map("sunspec_inverter")
    img = m.encode(SAMPLES["sunspec_inverter"])
    assert (img[("holding", 40000)], img[("holding", 40001)]) == (0x5375, 0x6E53)  # "SunS"
    addr = 40002
    for mid in [1, 103, 120, 123, 704]:
        assert img[("holding", addr)] == mid
        assert img[("holding", addr + 1)] == model_def(mid).length
        addr += 2 + model_def(mid).length
    assert img[("holding", addr)] == 0xFFFF  # end of chain
    # 103.W at offset 14 of the model after model 1 (2 + 68 registers from 40000)
    assert m.registers["power_w"].address == 40070 + 14


def test_scale_factor_rises_when_value_overflows():
    m = load_map("sunspec_storage")
    img = m.encode({"capacity_wh": 200_000.0, "soc": 0.5})  # 200 kWh exceeds uint16 at sf 0
    wh_sf = m.registers["713.WH_SF"]
    assert img[("holding", wh_sf.address)] == 1  # raised to 10 Wh resolution
    assert m.decode(img)["capacity_wh"] == 200_000.0


def test_sdm630_hex_table():
    m = load_map("sdm630")
    img = m.encode(SAMPLES["sdm630"] | {"voltage_v": 230.0, "frequency_hz": 50.0})
    assert (img[("input", 0x0000)], img[("input", 0x0001)]) == (0x4366, 0x0000)  # 230.0 V
    assert (img[("input", 0x0046)], img[("input", 0x0047)]) == (0x4248, 0x0000)  # 50.0 Hz
    # import energy is held in kWh: 123.456 kWh
    assert m.decode({("input", 0x0048): 0x42F6, ("input", 0x0049): 0xE979}) \
        ["import_energy_wh"] == pytest.approx(123456.0, rel=1e-6)


def test_phoenix_state_and_word_order():
    m = load_map("evse_phoenix")
    img = m.encode({"state": 3.0, "power_w": 70000.0})
    assert img[("input", 100)] == 0x0043                    # 'C' = charging
    assert (img[("input", 120)], img[("input", 121)]) == (0x1170, 0x0001)  # 70000, low word first
    out = m.decode(img)
    assert out["state"] == 3 and out["plugged"] == 1


def test_decode_write_yields_named_setpoints():
    m = load_map("sunspec_inverter")
    img = m.encode(SAMPLES["sunspec_inverter"])
    reg = m.registers["power_limit_w"]
    sf = img[("holding", m.registers["123.WMaxLimPct_SF"].address)]
    assert sf == 0xFFFF  # -1: 0.1 % resolution
    named = m.decode_write("holding", reg.address, [400], img)  # 40.0 % of 50 kW
    assert named == {"power_limit_w": pytest.approx(20000.0)}
    s = load_map("sunspec_storage")
    simg = s.encode(SAMPLES["sunspec_storage"])
    req = s.encode_write({"setpoint_w": -1234.0}, simg)
    (table, address, words), = req
    assert s.decode_write(table, address, words, simg) == {"setpoint_w": -1234.0}


def test_writable_registers_are_the_rw_ones():
    m = load_map("evse_phoenix")
    assert m.writable() == [("holding", 528)]
    with pytest.raises(ValueError):
        m.encode_write({"power_w": 1.0}, m.encode({}))


def test_invalid_maps_are_rejected():
    base = {"name": "x", "kind": "meter", "manual": "m"}
    with pytest.raises(MapError):
        parse_map(base | {"registers": [{"name": "power_w", "address": 0}]})  # no table/type
    with pytest.raises(MapError):
        parse_map(base | {"registers": [
            {"name": "a", "address": 0, "table": "input", "type": "float32"},
            {"name": "b", "address": 1, "table": "input", "type": "uint16"}]})  # overlap
    with pytest.raises(MapError):
        parse_map(base | {"sunspec": {"models": [1]},
                          "registers": [{"name": "power_w", "point": "103.W"}]})  # not in chain
    with pytest.raises(MapError):
        load_map("no_such_map")


@pytest.mark.parametrize("name", available_maps())
def test_fast_numeric_decode_matches_decode(name):
    m = load_map(name)
    img = m.encode(SAMPLES[name])
    full = {k: float(v) for k, v in m.decode(img).items() if v is not None and not isinstance(v, str)}
    assert m.decode_numeric(img) == full
    assert m.decode_numeric({}) == {}
