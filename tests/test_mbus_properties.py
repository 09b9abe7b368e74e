"""Property tests for the M-Bus codec: encode/decode round trips, and garbage in
gives a ProtocolError and nothing else."""

from __future__ import annotations

import math
from datetime import datetime

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.mbus import (
    Coding,
    FrameParser,
    Function,
    LongFrame,
    LongHeader,
    RecordSpec,
    VariableDataTelegram,
    decode_telegram,
    decode_user_data,
    parse_frame,
    parse_records,
    rsp_ud,
)
from zaas_edge.drivers.mbus.coding import decode_bcd, decode_int
from zaas_edge.drivers.mbus.encode import encode_record
from zaas_edge.drivers.mbus.records import describe_vib

from zaas_edge.errors import ProtocolError

# VIF chains with a numeric meaning, across the primary, FB, FD and combinable tables.
NUMERIC_VIBS = [
    bytes((v,)) for v in (*range(0x00, 0x20), *range(0x28, 0x30), *range(0x38, 0x40), *range(0x50, 0x6C))
] + [
    b"\x86\x3b",  # energy kWh, forward flow
    b"\x86\x3c",  # backward flow
    b"\x93\x73",  # volume with a 10^-3 correction factor
    b"\xfb\x00",
    b"\xfb\x10",
    b"\xfd\x47",
    b"\xfd\x5a",
    b"\xfd\x0e",
    b"\x2b",
    b"\xac\xff\x01",  # power with a manufacturer-specific VIFE
    b"\x7c\x03HR%",  # plain text '%RH'
    b"\xfc\x03HR%\x74",  # plain text with a 10^-2 correction VIFE
]
INT_CODINGS = {Coding.INT8: 1, Coding.INT16: 2, Coding.INT24: 3, Coding.INT32: 4, Coding.INT48: 6, Coding.INT64: 8}
BCD_CODINGS = {Coding.BCD2: 1, Coding.BCD4: 2, Coding.BCD6: 3, Coding.BCD8: 4, Coding.BCD12: 6}


def _meaning(vib: bytes):  # noqa: ANN202
    vif, vife, text = vib[0], vib[1:], None
    if vif & 0x7F == 0x7C:
        text = vib[2 : 2 + vib[1]][::-1].decode()
        vife = vib[2 + vib[1] :]
    return describe_vib(vif, vife, text)


def _scaled(raw: int, vib: bytes) -> int | float:
    m = _meaning(vib)
    return raw * m.factor * 10.0**m.exponent + m.offset


@st.composite
def numeric_specs(draw: st.DrawFn) -> tuple[RecordSpec, int]:
    vib = draw(st.sampled_from(NUMERIC_VIBS))
    coding = draw(st.sampled_from([*INT_CODINGS, *BCD_CODINGS]))
    if coding in INT_CODINGS:
        bits = 8 * INT_CODINGS[coding]
        signed = _meaning(vib).kind != "binary"
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        # keep within float precision so the scaled value maps back to one integer
        raw = draw(st.integers(max(lo, -(2**50)), min(hi, 2**50)))
    else:
        digits = 2 * BCD_CODINGS[coding]
        raw = draw(st.integers(-(10 ** (digits - 1) - 1), 10**digits - 1))
    spec = RecordSpec(
        vib=vib,
        value=_scaled(raw, vib),
        coding=coding,
        function=draw(st.sampled_from(list(Function))),
        storage=draw(st.integers(0, 2**20)),
        tariff=draw(st.integers(0, 2**6)),
        subunit=draw(st.integers(0, 2**4)),
    )
    return spec, raw


@st.composite
def headers(draw: st.DrawFn) -> LongHeader:
    return LongHeader(
        access_no=draw(st.integers(0, 255)),
        status=draw(st.integers(0, 255)),
        signature=draw(st.integers(0, 0xFFFF)),
        identification=draw(st.text("0123456789", min_size=8, max_size=8)),
        manufacturer=draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3)),
        version=draw(st.integers(0, 255)),
        medium=draw(st.integers(0, 255)),
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(headers(), st.lists(numeric_specs(), max_size=8), st.integers(0, 250))
def test_numeric_records_round_trip(header: LongHeader, items: list, address: int) -> None:
    specs = [s for s, _ in items]
    body = sum(len(encode_record(s)) for s in specs)
    assume(body + 12 <= 252)
    raw_frame = rsp_ud(address, header, specs)
    frame = parse_frame(raw_frame)
    assert isinstance(frame, LongFrame) and frame.address == address and frame.ci == 0x72
    telegram = decode_telegram(raw_frame)
    assert isinstance(telegram, VariableDataTelegram)
    assert telegram.header == header
    assert len(telegram.records) == len(specs)
    for (spec, raw), record in zip(items, telegram.records, strict=True):
        assert (record.function, record.storage, record.tariff, record.subunit) == (
            spec.function,
            spec.storage,
            spec.tariff,
            spec.subunit,
        )
        assert record.coding == spec.coding
        got_raw = (
            decode_bcd(record.data)
            if spec.coding in BCD_CODINGS
            else decode_int(record.data, signed=describe_vib(record.vif, record.vife).kind != "binary")
        )
        assert got_raw == raw
        assert math.isclose(record.value, spec.value, rel_tol=1e-9, abs_tol=1e-12)


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2080, 12, 31)),
    st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40),
)
def test_dates_and_text_round_trip(moment: datetime, text: str) -> None:
    moment = moment.replace(microsecond=0)
    specs = [
        RecordSpec(b"\x6c", moment.date().isoformat(), Coding.INT16),
        RecordSpec(b"\x6d", moment.replace(second=0).isoformat(), Coding.INT32),
        RecordSpec(b"\x6d", moment.isoformat(), Coding.INT48),
        RecordSpec(b"\x6d", moment.time().isoformat(), Coding.INT24),
        RecordSpec(b"\xfd\x0c", text, Coding.VARIABLE),
    ]
    data = b"".join(encode_record(s) for s in specs)
    records = parse_records(data).records
    assert [r.value for r in records] == [s.value for s in specs]
    assert all(r.error is None for r in records)


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_protocol_error(raw: bytes) -> None:
    try:
        decode_telegram(raw)
    except ProtocolError:
        pass
    try:
        parse_records(raw)
    except ProtocolError:
        pass


@settings(max_examples=500)
@given(st.integers(0, 255), st.binary(max_size=252))
def test_random_user_data_raises_only_protocol_error(ci: int, data: bytes) -> None:
    """Framed correctly, so the garbage reaches the application layer."""
    frame = LongFrame(0x08, 1, ci, data).to_bytes()
    try:
        telegram = decode_telegram(frame)
    except ProtocolError as exc:
        assert "at byte" in str(exc) or "CI" in str(exc) or "needs" in str(exc)
        return
    assert telegram.ci == ci
    assert telegram == decode_user_data(ci, data)


EXAMPLES = [
    bytes.fromhex("681F1F680802727856341224400107550000000313153100DA023B13018B60043718021816"),
    rsp_ud(
        5,
        LongHeader(1, 0, 0, "12345678", "ABC", 1, 4),
        [
            RecordSpec(b"\x6d", "2024-02-29T13:45:00"),
            RecordSpec(b"\xfc\x03HR%\x74", 54.1, Coding.INT16),
            RecordSpec(b"\x78", "G0017", Coding.VARIABLE),
            RecordSpec(b"\xfd\xc9\xff\x01", 230, Coding.INT16),
        ],
        manufacturer_data=b"\x01\x02",
    ),
]


@settings(max_examples=400)
@given(st.sampled_from(EXAMPLES), st.data())
def test_mutated_frames_raise_only_protocol_error(example: bytes, data: st.DataObject) -> None:
    raw = bytearray(example)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    cut = data.draw(st.integers(0, len(raw)))
    mutated = bytes(raw[:cut])
    refreshed = None
    if len(example) > 9:
        # keep the frame valid so the mutation reaches the records
        body = bytearray(example[7:-2])
        if body:
            pos = data.draw(st.integers(0, len(body) - 1))
            body[pos] = data.draw(st.integers(0, 255))
            body = body[: data.draw(st.integers(0, len(body)))]
        refreshed = LongFrame(example[4], example[5], example[6], bytes(body)).to_bytes()
    for candidate in (mutated, refreshed):
        if candidate is None:
            continue
        try:
            decode_telegram(candidate)
        except ProtocolError:
            pass


@given(st.lists(st.binary(max_size=40), max_size=20))
def test_stream_parser_never_raises_and_finds_embedded_frames(chunks: list[bytes]) -> None:
    parser = FrameParser()
    for chunk in chunks:
        for frame in parser.feed(chunk):
            assert frame == parse_frame(frame.to_bytes())
    # After any garbage, a clean frame preceded by a break in the noise is found.
    parser.clear()
    assert parser.feed(EXAMPLES[0]) == [parse_frame(EXAMPLES[0])]
