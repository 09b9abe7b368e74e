"""M-Bus link layer (EN 13757-2): frame formats, checks, stream parsing, builders."""

from __future__ import annotations

import pytest
from zaas_edge.drivers.mbus import (
    Ack,
    ControlFrame,
    FrameParser,
    LongFrame,
    MBusError,
    SecondarySelection,
    ShortFrame,
    application_reset,
    decode_telegram,
    encode_frame,
    parse_frame,
    req_ud1,
    req_ud2,
    select_secondary,
    set_primary_address,
    snd_nke,
    snd_ud,
)

from zaas_edge.errors import ProtocolError

# RSP_UD from EN 13757-3 Annex (example telegram of a heat meter), hand checked:
# 68 1F 1F 68 | C=08 A=02 CI=72 | ID 12345678, man 4024 ("PAD"), ver 01, medium 07,
# access 55, status 00, signature 0000 | 03 13 153100 | DA 02 3B 1301 | 8B 60 04 371802 | CS 18 | 16
EXAMPLE = bytes.fromhex(
    "681F1F68080272785634122440010755000000031315310" + "0DA023B13018B600437180218 16".replace(" ", "")
)


def test_builders_give_the_standard_bytes() -> None:
    assert snd_nke(0x05) == bytes.fromhex("1040054516")
    assert req_ud2(0x05) == bytes.fromhex("105B056016")
    assert req_ud2(0x05, fcb=True) == bytes.fromhex("107B058016")
    assert req_ud1(0xFE) == bytes.fromhex("105AFE5816")
    assert application_reset(0x01) == bytes.fromhex("68030368530150A416")
    assert application_reset(0x01, subcode=0x10)[-6:] == bytes.fromhex("53015010B416")
    assert set_primary_address(0xFE, 0x08, fcb=False) == bytes.fromhex("6806066853FE51017A08251 6".replace(" ", ""))
    assert select_secondary("12345678", "ABC", 1, 7) == bytes.fromhex("680B0B6853FD527856341243040107" + "0516")


def test_select_secondary_wildcards_decode_back() -> None:
    raw = select_secondary("1234FFFF")
    assert raw[6] == 0x52 and raw[5] == 0xFD
    sel = decode_telegram(raw)
    assert sel == SecondarySelection(0x52, "1234FFFF", None, None, None)
    with pytest.raises(MBusError, match="8 digits"):
        select_secondary("12AB5678")


def test_parse_each_format() -> None:
    assert parse_frame(b"\xe5") == Ack()
    assert parse_frame(bytes.fromhex("105B056016")) == ShortFrame(0x5B, 0x05)
    assert parse_frame(bytes.fromhex("68030368530150A416")) == ControlFrame(0x53, 0x01, 0x50)
    frame = parse_frame(EXAMPLE)
    assert isinstance(frame, LongFrame)
    assert (frame.control, frame.address, frame.ci) == (0x08, 0x02, 0x72)
    assert frame.is_response
    assert len(frame.data) == 0x1F - 3
    assert encode_frame(frame) == EXAMPLE


@pytest.mark.parametrize(
    ("raw", "message", "offset"),
    [
        (bytes.fromhex("105B056116"), "checksum", 3),
        (bytes.fromhex("105B056017"), "stop byte", 4),
        (bytes.fromhex("681F1E68") + EXAMPLE[4:], "length bytes differ", 2),
        (bytes.fromhex("681F1F69") + EXAMPLE[4:], "second start byte", 3),
        (bytes.fromhex("68000068080016"), "below the minimum", 1),
        (EXAMPLE[:-2] + bytes(((EXAMPLE[-2] + 1) & 0xFF, 0x16)), "checksum", len(EXAMPLE) - 2),
        (EXAMPLE[:-1] + b"\x17", "stop byte", len(EXAMPLE) - 1),
        (b"\x00", "starts no M-Bus frame", 0),
        (b"", "empty", 0),
        (EXAMPLE + b"\xe5", "unexpected byte", len(EXAMPLE)),
    ],
)
def test_parse_rejects_with_offset(raw: bytes, message: str, offset: int) -> None:
    with pytest.raises(ProtocolError, match=message) as info:
        parse_frame(raw)
    assert info.value.offset == offset
    assert f"at byte {offset}" in str(info.value)


def test_truncated_frame_is_a_protocol_error() -> None:
    for cut in range(1, len(EXAMPLE)):
        with pytest.raises(MBusError):
            parse_frame(EXAMPLE[:cut])


def test_stream_parser_splits_and_resynchronises() -> None:
    parser = FrameParser()
    corrupt = bytearray(EXAMPLE)
    corrupt[20] ^= 0x01  # checksum now wrong
    stream = b"\x00\x11" + EXAMPLE + b"\xe5" + bytes(corrupt) + snd_nke(3) + EXAMPLE
    out = []
    for b in stream:  # byte by byte, the worst case a serial read can give
        out += parser.feed(bytes((b,)))
    assert out[0] == parse_frame(EXAMPLE)
    assert out[1] == Ack()
    assert out[-2] == ShortFrame(0x40, 3)
    assert out[-1] == parse_frame(EXAMPLE)
    assert parser.bad_frames >= 1
    assert parser.last_error is not None and "at byte" in parser.last_error
    assert parser.pending == 0
    # The corrupt frame's bytes were dropped, never surfaced as a frame.
    assert all(f.to_bytes() != bytes(corrupt) for f in out)


def test_stream_parser_keeps_a_partial_frame_until_complete() -> None:
    parser = FrameParser()
    assert parser.feed(EXAMPLE[:10]) == []
    assert parser.pending == 10
    assert parser.feed(EXAMPLE[10:]) == [parse_frame(EXAMPLE)]
    parser.feed(EXAMPLE[:5])
    parser.clear()
    assert parser.pending == 0
    assert parser.dropped_bytes == 5


def test_frame_values_are_validated() -> None:
    with pytest.raises(MBusError):
        ShortFrame(0x100, 1)
    with pytest.raises(MBusError, match="at most 252"):
        LongFrame(0x08, 1, 0x72, bytes(253))
    with pytest.raises(MBusError):
        snd_nke(256)
    assert snd_ud(1, 0x51, b"") == ControlFrame(0x53, 1, 0x51).to_bytes()
