"""``exact_raw``: what ``modbus write`` checks before it encodes, so a lossy value is refused, never rounded."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zaas_edge.drivers.modbus.decode import (
    DataType,
    RegisterSpec,
    decode_value,
    encode_value,
    exact_raw,
    raw_range,
)

from zaas_edge.errors import ProtocolError

INTEGER_TYPES = [t for t in DataType if raw_range(t) is not None]


@pytest.mark.parametrize(("value", "dtype", "message"), [
    (21.5, "int16", "21.5 cannot be written exactly: int16 holds whole numbers from -32768 to 32767"),
    (70000, "uint16", "70000 is out of range: uint16 holds whole numbers from 0 to 65535"),
    (-1, "uint16", "-1 is out of range: uint16 holds whole numbers from 0 to 65535"),
    (-3, "uint32", "-3 is out of range: uint32 holds whole numbers from 0 to 4294967295"),
    (1e40, "float32", "1e+40 does not fit a float32"),
])
def test_a_lossy_value_is_refused_in_one_line_naming_the_type_and_range(value: float, dtype: str,
                                                                        message: str) -> None:
    with pytest.raises(ProtocolError) as err:
        exact_raw(value, RegisterSpec(DataType(dtype)))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_scaled_point_takes_its_steps_and_refuses_finer_ones() -> None:
    spec = RegisterSpec(DataType.INT16, scale=0.1)
    assert exact_raw(21.5, spec) == 215
    with pytest.raises(ProtocolError, match=r"21.55 cannot be written exactly: int16 with scale 0.1 holds steps "
                                            r"of 0.1 from -3276.8 to 3276.7"):
        exact_raw(21.55, spec)


@given(st.sampled_from(INTEGER_TYPES), st.data())
def test_every_raw_integer_in_range_is_exact_and_round_trips(dtype: DataType, data: st.DataObject) -> None:
    lo, hi = raw_range(dtype)  # type: ignore[misc]
    raw = int(float(data.draw(st.integers(lo, hi))))  # what --value parses to (a float: 64-bit ends round)
    spec = RegisterSpec(dtype)
    if not lo <= raw <= hi:  # 2**63 - 1 is 2**63 as a float: out of range, and said so
        with pytest.raises(ProtocolError, match="out of range"):
            exact_raw(float(raw), spec)
        return
    assert exact_raw(float(raw), spec) == raw
    if abs(raw) < 2**53:  # a float holds it exactly: what the device reads back is what was written
        assert decode_value(encode_value(float(raw), spec), spec).value == raw


@given(st.sampled_from(INTEGER_TYPES), st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_is_either_exact_or_refused_never_rounded(dtype: DataType, value: float) -> None:
    spec = RegisterSpec(dtype)
    try:
        raw = exact_raw(value, spec)
    except ProtocolError:
        lo, hi = raw_range(dtype)  # type: ignore[misc]
        assert not math.isfinite(value) or not value.is_integer() or not lo <= value <= hi
        return
    assert raw == value
