"""The protobuf wire format layer (zaas_edge.wire.proto): round trips by property, garbage refused cleanly."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zaas_edge.errors import ProtocolError
from zaas_edge.wire import proto as pb

u64 = st.integers(0, 2**64 - 1)
s64 = st.integers(-(2**62), 2**62)


@given(st.lists(u64, max_size=50), st.lists(s64, max_size=50), st.lists(st.text(max_size=8), max_size=5),
       st.lists(st.floats(allow_nan=False), max_size=10), u64, s64, st.integers(-(2**63), 2**63 - 1))
def test_every_kind_of_field_round_trips(us, ss, texts, floats, u, s, i):
    out = bytearray()
    pb.put_uint(out, 1, u)
    pb.put_sint(out, 2, s)
    pb.put_int64(out, 3, i)
    pb.put_packed(out, 4, us)
    pb.put_packed_sint(out, 5, ss)
    pb.put_texts(out, 6, texts)
    pb.put_doubles(out, 7, struct.pack(f"<{len(floats)}d", *floats))
    f = pb.Fields(bytes(out))
    assert (f.uint(1), f.sint(2), f.int64(3)) == (u, s, i)
    assert f.uints(4) == us
    assert [(z >> 1) ^ -(z & 1) for z in f.uints(5)] == ss
    assert f.texts(6) == texts and f.doubles(7) == floats
    assert (f.uint(99), f.text(99), f.uints(99), f.message(99)) == (0, "", [], None)  # absent: the proto3 defaults


def test_defaults_are_left_out_and_out_of_range_values_refused():
    out = bytearray()
    pb.put_uint(out, 1, 0)
    pb.put_text(out, 2, "")
    pb.put_packed(out, 3, [])
    pb.put_bool(out, 4, False)
    assert out == b""
    with pytest.raises(ValueError):
        pb.put_uint(out, 1, 2**64)
    with pytest.raises(ValueError):
        pb.put_packed(out, 1, [-1])
    with pytest.raises(ValueError):
        pb.put_int64(out, 1, 2**63)


def test_wrong_wire_types_and_groups_are_protocol_errors():
    f = pb.Fields(b"\x0a\x01x")  # field 1 as a string
    with pytest.raises(ProtocolError, match="wire type"):
        f.uint(1)
    with pytest.raises(ProtocolError, match="groups"):
        pb.Fields(b"\x0b")
    with pytest.raises(ProtocolError, match="field number 0"):
        pb.Fields(b"\x00\x01")
    with pytest.raises(ProtocolError, match="64 bits"):
        pb.Fields(b"\x08" + b"\xff" * 9 + b"\x7f")


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_garbage_raises_protocol_error_only(data):
    try:
        f = pb.Fields(data)
        for n in list(f.by_number)[:5]:
            for get in (f.uint, f.text, f.texts, f.uints, f.doubles, f.message, f.messages):
                try:
                    get(n)
                except ProtocolError:
                    pass
    except ProtocolError:
        pass
