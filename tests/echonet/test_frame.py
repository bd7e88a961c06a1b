"""ECHONET Lite frame codec: round trips, property maps in both forms, malformed frames."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.echonet.frame import (
    REJECT_REASONS, TWO_LISTS, Esv, Frame, FrameError, Property, decode, decode_property_map,
    encode, encode_property_map,
)

props = st.lists(st.builds(Property, st.integers(0x80, 0xFF), st.binary(max_size=40)), max_size=12)


@st.composite
def frames(draw):
    esv = draw(st.sampled_from(list(Esv)))
    get = draw(props) if esv in TWO_LISTS else []
    return Frame(draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFFFF)),
                 draw(st.integers(0, 0xFFFFFF)), esv, tuple(draw(props)), tuple(get))


@given(frames())
def test_round_trip_every_esv(f):
    assert decode(encode(f)) == f


def test_get_request_bytes_match_the_spec_example():
    # Get E4 (remaining %) of storage battery 1 from a controller 05FF01, TID 1
    f = Frame(1, 0x05FF01, 0x027D01, Esv.GET, (Property(0xE4),))
    assert encode(f).hex() == "108100010" + "5ff01027d0162" + "01e400"
    reply = decode(bytes.fromhex("10810001027d0105ff017201e40132"))
    assert reply.esv is Esv.GET_RES and reply.values() == {0xE4: b"\x32"}


def test_setget_carries_two_lists():
    f = Frame(7, 0x05FF01, 0x027D01, Esv.SETGET, (Property(0xDA, b"\x42"),), (Property(0xCF),))
    raw = encode(f)
    assert raw[11] == 1 and raw[-3:] == b"\x01\xcf\x00"
    assert decode(raw).get_props == (Property(0xCF),)
    with pytest.raises(ValueError):
        encode(Frame(7, 1, 2, Esv.GET, (), (Property(0x80),)))


@pytest.mark.parametrize("epcs", [[], [0x80], list(range(0x80, 0x8F)), list(range(0x80, 0x90)),
                                  [0x80, 0x9D, 0x9E, 0x9F, *range(0xD0, 0xFF)], list(range(0x80, 0x100))])
def test_property_map_forms(epcs):
    edt = encode_property_map(epcs)
    assert edt[0] == len(epcs)
    assert len(edt) == (1 + len(epcs) if len(epcs) < 16 else 17)
    assert decode_property_map(edt) == frozenset(epcs)


def test_property_map_bitmap_layout():
    # bit j of byte i is EPC 0x80 + i + 0x10 j: 0x80 -> byte 0 bit 0, 0xE4 -> byte 4 bit 6
    edt = encode_property_map(list(range(0x80, 0x8F)) + [0xE4])
    assert edt[1] == 0x01 and edt[1 + 4] == 0x41
    assert decode_property_map(edt) == frozenset([*range(0x80, 0x8F), 0xE4])


@given(st.sets(st.integers(0x80, 0xFF)))
def test_property_map_round_trip(epcs):
    assert decode_property_map(encode_property_map(epcs)) == epcs


@pytest.mark.parametrize("raw, reason", [
    (bytes.fromhex("1081000105ff01027d"), "truncated"),
    (bytes.fromhex("1082000105ff01027d016201e400"), "ehd"),
    (bytes.fromhex("1081000105ff01027d016203e400"), "opc"),
    (bytes.fromhex("1081000105ff01027d016201e405aabb"), "pdc"),
    (bytes.fromhex("1081000105ff01027d016201e40000"), "trailing"),
    (bytes.fromhex("1081000105ff01027d01ff01e400"), "esv"),
])
def test_malformed_frames_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(FrameError) as e:
        decode(raw)
    assert e.value.reason == reason


@pytest.mark.parametrize("edt", [b"", b"\x02\x80", b"\x10" + b"\x00" * 15, b"\x11" + b"\xff" * 16])
def test_malformed_property_maps_rejected(edt):
    with pytest.raises(FrameError):
        decode_property_map(edt)


@settings(max_examples=400)
@given(st.binary(max_size=80))
def test_fuzzed_bytes_decode_or_raise_frame_error(raw):
    try:
        f = decode(raw)
    except FrameError as e:
        assert e.reason in REJECT_REASONS
    else:  # whatever decodes re-encodes to the same bytes
        assert encode(f) == raw


@given(frames(), st.data())
def test_mutated_valid_frames_never_crash(f, data):
    raw = bytearray(encode(f))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        try:
            decode(candidate)
        except FrameError as e:
            assert e.reason in REJECT_REASONS
