"""A point decoded straight from its response's bytes (``compile_value``) is the number
``decode_value`` gives, missing where it says missing; a device polls the same values either way.

The compiled decoder is a CPU shortcut for the common point (a number in ABCD order, no bit field,
no sentinel but a float's NaN or infinity): for any spec it declines, ``decode_value`` decodes.
"""

from __future__ import annotations

import math
import random
import struct

from hypothesis import given
from hypothesis import strategies as st
from zaas_edge.drivers.modbus import load_profiles
from zaas_edge.drivers.modbus.decode import (
    DataType,
    RegisterSpec,
    SentinelPolicy,
    WordOrder,
    compile_value,
    decode_value,
    register_count,
    registers_bytes,
)
from zaas_edge.drivers.modbus.device import Device
from zaas_edge.drivers.modbus.options import ModbusOptions
from zaas_edge.drivers.modbus.plan import Table

from zaas_edge.model import Quality

numeric = [t for t in DataType if t is not DataType.STRING]
specs = st.builds(
    RegisterSpec,
    dtype=st.sampled_from(numeric),
    order=st.sampled_from(list(WordOrder)),
    scale=st.one_of(st.just(1.0), st.floats(-1e6, 1e6, allow_nan=False), st.integers(-100, 100)),
    offset=st.one_of(st.just(0.0), st.floats(-1e6, 1e6, allow_nan=False)),
    sentinel=st.sampled_from(list(SentinelPolicy)),
    sentinel_values=st.one_of(st.just(()), st.tuples(st.integers(0, 0xFFFF))),
    bit=st.one_of(st.none(), st.integers(0, 15)),
)


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


@given(specs, st.data())
def test_a_compiled_decoder_gives_what_decode_value_gives(spec: RegisterSpec, data: st.DataObject) -> None:
    decode = compile_value(spec)
    if decode is None:
        assert (spec.order is not WordOrder.ABCD or spec.bit is not None or spec.sentinel is not SentinelPolicy.NONE
                or spec.sentinel_values)
        return
    n = register_count(spec.dtype)
    before = data.draw(st.lists(st.integers(0, 0xFFFF), max_size=4))
    regs = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=n, max_size=n))
    if spec.dtype.is_float and data.draw(st.booleans()):  # NaN and infinities, which are missing
        regs = list(struct.unpack(f">{n}H", struct.pack(_FMT[spec.dtype], data.draw(st.sampled_from(
            [math.nan, math.inf, -math.inf, 0.0, -0.0])))))
    buf = registers_bytes([*before, *regs, 7])
    assert buf is not None
    expected = decode_value(regs, spec)
    got = decode(buf, 2 * len(before))
    assert same(got, expected.value) and (got is None) == (expected.quality is Quality.ERROR)


_FMT = {DataType.FLOAT32: ">f", DataType.FLOAT64: ">d"}


def test_registers_that_are_not_sixteen_bit_numbers_have_no_bytes() -> None:
    assert registers_bytes([1, 0xFFFF]) == b"\x00\x01\xff\xff"
    for bad in ([0x10000], [-1], [True], [1.0]):
        assert registers_bytes(bad) is None


class Memory:
    """A bus whose every register holds a fixed random word: what a device's poll reads."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words: dict[tuple[Table, int], int] = {}

    async def read(self, unit: int, table: Table, start: int, count: int, *, timeout: float,
                   gap_s: float) -> list[int]:
        out = []
        for a in range(start, start + count):
            if (table, a) not in self.words:
                pick = self.rng.random()
                self.words[(table, a)] = 0xFFFF if pick < 0.1 else 0x7FC0 if pick < 0.2 else self.rng.getrandbits(
                    1 if table.is_bits else 16)
            out.append(self.words[(table, a)])
        return out


async def test_every_profile_polls_the_same_values_with_and_without_compiled_decoders() -> None:
    compiled = {}
    for name in sorted(load_profiles()):
        opts = ModbusOptions.model_validate({"id": "bus", "type": "modbus", "transport": "tcp", "host": "127.0.0.1",
                                             "port": 1502, "devices": [{"id": "d", "unit": 1, "profile": name}]})
        bus = Memory(len(name))
        fast = Device(opts.devices[0], opts, bus)  # type: ignore[arg-type]
        slow = Device(opts.devices[0], opts, bus)  # type: ignore[arg-type]
        slow._use(slow.layout.without_compiled())  # every point through decode_value
        keys = frozenset(fast.entries)
        a, b = await fast.read(keys), await slow.read(keys)
        assert a.values.keys() == b.values.keys() and a.values, name
        for q in a.values:
            va, vb = a.values[q], b.values[q]
            if isinstance(va, str) or isinstance(vb, str):
                assert va == vb, (name, q)
            else:
                assert same(va.value, vb.value) and va.quality == vb.quality, (name, q, va, vb)
        compiled[name] = len(fast.layout.decoders)
    assert compiled["eastron-sdm630"] == len(load_profiles()["eastron-sdm630"].points)  # float32 ABCD, all of them
