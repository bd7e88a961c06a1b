"""Converters: hypothesis round trips per type and word order, plus a hex table."""
import math
import struct

import pytest
from hypothesis import given, strategies as st

from drivers import converters as cv

INT_TYPES = ["int16", "uint16", "int32", "uint32", "acc32", "int64", "uint64", "acc64",
             "enum16", "bitfield16", "enum32", "bitfield32"]
ORDERS = ["big", "little"]


@pytest.mark.parametrize("dtype", INT_TYPES)
@pytest.mark.parametrize("order", ORDERS)
@given(data=st.data())
def test_integer_round_trip(dtype, order, data):
    lo, hi = cv.value_range(dtype)
    x = data.draw(st.integers(lo, hi))
    words = cv.to_registers(x, dtype, order)
    assert len(words) == cv.word_count(dtype)
    assert all(0 <= w <= 0xFFFF for w in words)
    assert cv.from_registers(words, dtype, order) == x


@pytest.mark.parametrize("order", ORDERS)
@given(x=st.floats(width=32, allow_nan=False))
def test_float32_round_trip(order, x):
    assert cv.from_registers(cv.to_registers(x, "float32", order), "float32", order) == x


@given(s=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=16))
def test_string_round_trip(s):
    words = cv.to_registers(s, "string", size=8)
    assert len(words) == 8
    assert cv.from_registers(words, "string") == (s or None)


@pytest.mark.parametrize("dtype", ["int16", "uint16", "int32", "uint32", "sunssf", "enum16",
                                   "int64", "uint64", "float32"])
@pytest.mark.parametrize("order", ORDERS)
def test_sentinel_decodes_to_none(dtype, order):
    assert cv.from_registers(cv.to_registers(None, dtype, order), dtype, order) is None


@given(raw=st.integers(-32767, 32767), sf=st.integers(-6, 6))
def test_scale_factor_round_trip(raw, sf):
    assert cv.unapply_sf(cv.apply_sf(raw, sf), sf) == raw


def test_out_of_range_raises():
    with pytest.raises(OverflowError):
        cv.to_registers(40000, "int16")
    with pytest.raises(OverflowError):
        cv.to_registers(-1, "uint32")
    with pytest.raises(OverflowError):
        cv.to_registers(0x8000, "int16")
    with pytest.raises(OverflowError):
        cv.to_registers(-0x8000, "int16")  # the sentinel itself is not a value


# (value, type, word order, words)                       hex comment
HEX_TABLE = [
    (-1, "int16", "big", [0xFFFF]),                      # two's complement
    (0x7FFF, "int16", "big", [0x7FFF]),
    (None, "int16", "big", [0x8000]),                    # SunSpec "not implemented"
    (None, "uint16", "big", [0xFFFF]),
    (None, "int32", "big", [0x8000, 0x0000]),
    (None, "uint32", "big", [0xFFFF, 0xFFFF]),
    (0x12345678, "uint32", "big", [0x1234, 0x5678]),     # high word first
    (0x12345678, "uint32", "little", [0x5678, 0x1234]),  # low word first (Phoenix)
    (-2, "int32", "big", [0xFFFF, 0xFFFE]),
    (230.0, "float32", "big", [0x4366, 0x0000]),         # SDM630 230 V
    (50.0, "float32", "big", [0x4248, 0x0000]),          # SDM630 50 Hz
    (-1.5, "float32", "little", [0x0000, 0xBFC0]),
    ("SunS", "string", "big", [0x5375, 0x6E53]),         # SunSpec marker
    (1, "acc64", "big", [0, 0, 0, 1]),
]


@pytest.mark.parametrize("value,dtype,order,words", HEX_TABLE)
def test_hex_table(value, dtype, order, words):
    size = len(words) if dtype == "string" else None
    assert cv.to_registers(value, dtype, order, size=size) == words
    assert cv.from_registers(words, dtype, order) == value


def test_nan_float_is_sentinel():
    nan_words = list(struct.unpack(">HH", struct.pack(">f", math.nan)))
    assert cv.from_registers(nan_words, "float32") is None


def test_apply_sf_examples():
    assert cv.apply_sf(5001, -2) == 50.01
    assert cv.apply_sf(123, 1) == 1230.0
    assert cv.apply_sf(None, 0) is None
    assert cv.apply_sf(1, None) is None
