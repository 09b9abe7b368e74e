"""Register decoding: word orders, sentinels, scale factors, strings, bit fields, round trips."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from zaas_edge.drivers.modbus.decode import (
    DataType,
    Decoded,
    RegisterSpec,
    SentinelPolicy,
    WordOrder,
    decode_bits,
    decode_raw,
    decode_scale_factor,
    decode_string,
    decode_value,
    encode_bits,
    encode_raw,
    encode_string,
    encode_value,
    register_count,
)

from zaas_edge.errors import ProtocolError
from zaas_edge.model import Quality

NUMERIC = [t for t in DataType if t is not DataType.STRING]
INT_RANGES = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}


# --- known answers, from the byte orders as the manuals draw them -------------------

@pytest.mark.parametrize(
    "order, registers",
    [
        (WordOrder.ABCD, (0x1234, 0x5678)),
        (WordOrder.CDAB, (0x5678, 0x1234)),
        (WordOrder.BADC, (0x3412, 0x7856)),
        (WordOrder.DCBA, (0x7856, 0x3412)),
    ],
)
def test_uint32_word_orders(order, registers):
    assert decode_raw(registers, DataType.UINT32, order) == 0x12345678
    assert encode_raw(0x12345678, DataType.UINT32, order) == registers


@pytest.mark.parametrize(
    "order, registers",
    [
        (WordOrder.ABCD, (0x0102, 0x0304, 0x0506, 0x0708)),
        (WordOrder.CDAB, (0x0708, 0x0506, 0x0304, 0x0102)),
        (WordOrder.BADC, (0x0201, 0x0403, 0x0605, 0x0807)),
        (WordOrder.DCBA, (0x0807, 0x0605, 0x0403, 0x0201)),
    ],
)
def test_uint64_word_orders(order, registers):
    assert decode_raw(registers, DataType.UINT64, order) == 0x0102030405060708


def test_float32_230_volts_as_an_sdm630_sends_it():
    # 230.0 V is 0x43660000 in IEEE 754
    assert decode_raw((0x4366, 0x0000), DataType.FLOAT32) == 230.0
    assert decode_raw((0x0000, 0x4366), DataType.FLOAT32, WordOrder.CDAB) == 230.0


def test_int16_and_byte_swap():
    assert decode_raw((0xFFFE,), DataType.INT16) == -2
    assert decode_raw((0xFEFF,), DataType.INT16, WordOrder.BADC) == -2
    assert decode_raw((0xFFFE,), DataType.INT16, WordOrder.CDAB) == -2  # one word: no word swap


def test_float64_known_value():
    regs = struct.unpack(">4H", struct.pack(">d", 12345.678))
    assert decode_raw(regs, DataType.FLOAT64) == 12345.678


# --- sentinels --------------------------------------------------------------------

@pytest.mark.parametrize(
    "dtype, registers",
    [
        (DataType.INT16, (0x8000,)),
        (DataType.UINT16, (0xFFFF,)),
        (DataType.INT32, (0x8000, 0x0000)),
        (DataType.UINT32, (0xFFFF, 0xFFFF)),
        (DataType.INT64, (0x8000, 0, 0, 0)),
        (DataType.UINT64, (0xFFFF,) * 4),
        (DataType.FLOAT32, (0x7FC0, 0x0000)),  # NaN
    ],
)
def test_sunspec_sentinels_read_as_missing(dtype, registers):
    got = decode_value(registers, RegisterSpec(dtype, sentinel=SentinelPolicy.SUNSPEC))
    assert got == Decoded(None, Quality.ERROR)


def test_sentinel_policy_none_keeps_integers():
    assert decode_value((0x8000,), RegisterSpec(DataType.INT16)).value == -32768.0
    assert decode_value((0xFFFF,), RegisterSpec(DataType.UINT16)).value == 65535.0


def test_nan_and_infinity_are_never_values():
    nan = RegisterSpec(DataType.FLOAT32)
    assert decode_value((0x7FC0, 0), nan).quality is Quality.ERROR
    assert decode_value((0x7F80, 0), nan).value is None  # +inf


def test_all_ff_and_max_policies():
    all_ff = RegisterSpec(DataType.INT32, sentinel=SentinelPolicy.ALL_FF)
    assert decode_value((0xFFFF, 0xFFFF), all_ff).value is None
    assert decode_value((0xFFFF, 0xFFFE), all_ff).value == -2.0
    abb = RegisterSpec(DataType.INT32, sentinel=SentinelPolicy.MAX)
    assert decode_value((0x7FFF, 0xFFFF), abb).value is None
    assert decode_value((0x7FFF, 0xFFFE), abb).value == float(0x7FFFFFFE)
    explicit = RegisterSpec(DataType.UINT16, sentinel_values=(0x7FFF,))
    assert decode_value((0x7FFF,), explicit).quality is Quality.ERROR


# --- scale, offset, SunSpec scale factors -------------------------------------------

def test_scale_and_offset():
    spec = RegisterSpec(DataType.INT16, scale=0.1, offset=-40.0)
    assert decode_value((650,), spec).value == pytest.approx(25.0)


@pytest.mark.parametrize(
    "raw, sf_register, expected",
    [
        (2305, 0xFFFF, 230.5),  # sf -1
        (1234, 0x0002, 123400.0),  # sf +2
        (995, 0xFFFD, 0.995),  # sf -3 (power factor in model 103 scaled to 0..1 by a profile scale)
        (42, 0x0000, 42.0),
    ],
)
def test_sunspec_scale_factor_register(raw, sf_register, expected):
    got = decode_value((raw,), RegisterSpec(DataType.UINT16), sf_register, has_sf=True)
    assert got.value == pytest.approx(expected)
    assert got.quality is Quality.OK


def test_missing_scale_factor_makes_value_missing():
    spec = RegisterSpec(DataType.UINT16)
    assert decode_value((100,), spec, 0x8000, has_sf=True) == Decoded(None, Quality.ERROR)
    assert decode_value((100,), spec, None, has_sf=True).value is None
    assert decode_scale_factor(0x8000) is None
    with pytest.raises(ProtocolError, match="outside -10..10"):
        decode_scale_factor(0x0040)


# --- strings and bit fields -----------------------------------------------------------

def test_string_trimmed_of_nul_and_spaces():
    regs = encode_string("SunS", 2)
    assert regs == (0x5375, 0x6E53)
    assert decode_string(regs) == "SunS"
    assert decode_string((0x4142, 0x2020, 0x0000)) == "AB"
    assert decode_string((0x0000, 0x4142, 0x4300)) == "ABC"
    with pytest.raises(ProtocolError):
        decode_string((0x41FF,))


def test_bit_fields():
    assert decode_bits(0b1010, bit=1) == 1
    assert decode_bits(0b1010, bit=2) == 0
    assert decode_bits(0x0030, mask=0x00F0) == 3
    assert encode_bits(0x0000, 3, mask=0x00F0) == 0x0030
    assert encode_bits(0xFFFF, 0, bit=15) == 0x7FFF
    spec = RegisterSpec(DataType.UINT16, bit=3)
    assert decode_value((0x0008,), spec).value == 1.0
    with pytest.raises(ProtocolError):
        encode_bits(0, 16, mask=0x000F)


# --- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", NUMERIC)
def test_wrong_register_count_is_a_protocol_error(dtype):
    n = register_count(dtype)
    with pytest.raises(ProtocolError, match="register"):
        decode_raw([0] * (n + 1), dtype)
    with pytest.raises(ProtocolError):
        decode_raw([0] * (n - 1), dtype)


def test_out_of_range_register_and_value():
    with pytest.raises(ProtocolError, match="16-bit"):
        decode_raw((0x10000,), DataType.UINT16)
    with pytest.raises(ProtocolError, match="does not fit"):
        encode_raw(70000, DataType.INT16)
    with pytest.raises(ProtocolError):
        encode_value(float("nan"), RegisterSpec(DataType.FLOAT32))


# --- properties -------------------------------------------------------------------------

ORDERS = st.sampled_from(list(WordOrder))


@st.composite
def int_case(draw):
    dtype = draw(st.sampled_from(list(INT_RANGES)))
    lo, hi = INT_RANGES[dtype]
    return dtype, draw(st.integers(lo, hi))


@given(int_case(), ORDERS)
def test_integer_round_trip(case, order):
    dtype, value = case
    regs = encode_raw(value, dtype, order)
    assert len(regs) == register_count(dtype)
    assert all(0 <= r <= 0xFFFF for r in regs)
    assert decode_raw(regs, dtype, order) == value


@given(st.floats(width=32, allow_nan=False), ORDERS)
def test_float32_round_trip(value, order):
    assert decode_raw(encode_raw(value, DataType.FLOAT32, order), DataType.FLOAT32, order) == value


@given(st.floats(allow_nan=False), ORDERS)
def test_float64_round_trip(value, order):
    assert decode_raw(encode_raw(value, DataType.FLOAT64, order), DataType.FLOAT64, order) == value


@given(int_case(), ORDERS, st.sampled_from([1.0, 0.1, 0.01, 0.001, 10.0]), st.integers(-3, 3))
def test_scaled_value_round_trip(case, order, scale, sf):
    dtype, raw = case
    # values are floats: 64-bit counters are exact up to 2**53 (far beyond any meter's range)
    assume(abs(raw) < 2**53)
    spec = RegisterSpec(dtype, order, scale=scale)
    value = decode_value(encode_raw(raw, dtype, order), spec).value
    assert value is not None
    back = encode_value(value, spec)
    assert decode_raw(back, dtype, order) == pytest.approx(raw, rel=1e-9, abs=1)


@given(st.integers(-32767, 32767), st.integers(-10, 10))
def test_scale_factor_round_trip(raw, sf):
    spec = RegisterSpec(DataType.INT16)
    sf_reg = sf & 0xFFFF
    got = decode_value(encode_raw(raw, DataType.INT16), spec, sf_reg, has_sf=True)
    assert got.value == pytest.approx(raw * 10.0**sf)
    assert decode_raw(encode_value(got.value, spec, sf), DataType.INT16) == raw


@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20), ORDERS)
def test_string_round_trip(text, order):
    n = max(1, (len(text) + 1) // 2)
    assert decode_string(encode_string(text, n, order), order) == text


@given(st.sampled_from(NUMERIC), st.lists(st.integers(-(2**17), 2**17), max_size=6), ORDERS,
       st.sampled_from(list(SentinelPolicy)))
def test_garbage_raises_protocol_error_only(dtype, registers, order, policy):
    spec = RegisterSpec(dtype, order, sentinel=policy)
    try:
        got = decode_value(registers, spec)
    except ProtocolError:
        return
    assert len(registers) == register_count(dtype)
    assert got.value is None or math.isfinite(got.value)


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=8))
def test_string_garbage_raises_protocol_error_only(registers):
    try:
        text = decode_string(registers)
    except ProtocolError:
        return
    assert text == text.strip()
    assert len(text) <= 2 * len(registers)
