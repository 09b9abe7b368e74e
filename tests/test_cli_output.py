"""Tables for people: numbers right-aligned and never cut, whatever the values."""

from __future__ import annotations

import math
import struct

from hypothesis import example, given
from hypothesis import strategies as st

from zaas_edge.cli.output import format_number, table


def test_a_numeric_column_is_right_aligned_and_a_text_column_left() -> None:
    rows = [("voltage", 230.10000610351562, "V"), ("energy_import", 12345678.9, "kWh"), ("serial", None, ""),
            ("count", 3, "")]
    text = table(["point", "value", "unit"], rows)
    lines = text.splitlines()
    assert lines[0] == "point               value  unit"
    assert lines[2] == "voltage             230.1  V"
    assert lines[3] == "energy_import  12345678.9  kWh"
    assert lines[5].endswith("  3")
    mixed = table(["device", "state"], [("m1", "online"), ("m22", 12)]).splitlines()
    assert mixed[2] == "m1      online" and mixed[3] == "m22     12"  # not all numbers: left as text


@given(st.lists(st.tuples(st.text(alphabet="abc_", min_size=1, max_size=8),
                          st.one_of(st.integers(-10**18, 10**18), st.floats(allow_nan=False))),
                min_size=1, max_size=8))
def test_every_cell_is_printed_whole(rows: list[tuple[str, float]]) -> None:
    text = table(["name", "value"], rows)
    body = text.splitlines()[2:]
    for line, (name, value) in zip(body, rows, strict=True):
        assert line.startswith(name) and line.endswith(format_number(value))


@given(st.floats(allow_nan=False, allow_infinity=False))
@example(3.4028234663852886e+38)  # float32's largest: its short forms round past it
def test_a_number_shown_reads_back_as_the_same_value(v: float) -> None:
    shown = format_number(v)
    back = float(shown)
    if back != v:  # shown with a float32's digits: the same float32
        assert struct.pack("<f", back) == struct.pack("<f", v)
    assert "e" not in shown or abs(v) >= 1e16 or abs(v) < 1e-6


def test_float32_noise_is_not_shown_and_integers_have_no_point() -> None:
    f32 = struct.unpack("<f", struct.pack("<f", 230.1))[0]
    assert format_number(f32) == "230.1" and format_number(2040.0) == "2040" and format_number(None) == "-"
    assert format_number(123456789.125) == "123456789.125" and format_number(math.inf) == "inf"
