"""The TIC codec: spec vectors, corrupted streams, and property tests.

Vectors are built from Enedis-NOI-CPT_54E as summarised in shared/ENERGY.md
§3.1 and from the unit vectors of j-vizcaino/goteleinfo quoted there. The
corrupted-stream cases check the one rule of the decoder: a bad group or a
broken frame costs only itself; good groups are kept and nothing is invented.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.tic import (
    EOT,
    ETX,
    STX,
    Frame,
    Group,
    Horodate,
    Mode,
    TicDecoder,
    TicError,
    Variant,
    checksum,
    detect_mode,
    encode_frame,
    encode_group,
    parse_group,
)

from zaas_edge.errors import ProtocolError

H, S = Mode.HISTORIC, Mode.STANDARD

HISTORIC_FRAME = [
    Group("ADCO", "021528603314"),
    Group("OPTARIF", "HC.."),
    Group("ISOUSC", "30"),
    Group("HCHC", "006906827"),
    Group("PTEC", "HP.."),
    Group("IINST", "003"),
    Group("PAPP", "00680"),
    Group("MOTDETAT", "000000"),
]
STANDARD_FRAME = [
    Group("ADSC", "064468368739"),
    Group("DATE", "", Horodate.parse("H230301091834")),
    Group("LTARF", "      BASE      "),
    Group("SINSTS", "00240"),
    Group("SMAXSN", "01024", Horodate.parse("H230301065253")),
    Group("MSG1", "PAS DE          MESSAGE         "),
    Group("PJOURF+1", "00008001 NONUTILE NONUTILE"),
    Group("RELAIS", "000"),
]


def _decode(stream: bytes, mode: Mode | None = None) -> tuple[list[Frame], TicDecoder]:
    decoder = TicDecoder(mode)
    frames = decoder.feed(stream)
    return frames, decoder


def _frame(groups: list[Group], mode: Mode, variant: Variant | None = None) -> bytes:
    return encode_frame(groups, mode, variant)


# --- checksums and groups -------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        (b"ADSC\t12345678900\t", 0x4A),
        (b"CCASN\tH191203120000\t00521\t", 0x36),
        (b"PAPP 012345", 0x20),
    ],
)
def test_checksum_unit_vectors(zone: bytes, expected: int) -> None:
    assert checksum(zone) == expected


def test_historic_group_checksum_excludes_the_last_space() -> None:
    assert encode_group(Group("PAPP", "012345"), H) == b"\nPAPP 012345  \r"  # checksum 0x20 is itself a space
    assert parse_group(b"PAPP 012345  ") == Group("PAPP", "012345")
    assert parse_group(b"PTEC HP..  ") == Group("PTEC", "HP..")


def test_standard_group_checksum_includes_the_last_tab() -> None:
    assert encode_group(Group("ADSC", "12345678900"), S) == b"\nADSC\t12345678900\tJ\r"
    group = parse_group(b"CCASN\tH191203120000\t00521\t6")
    assert group.label == "CCASN" and group.data == "00521"
    assert group.horodate is not None and group.horodate.raw == "H191203120000"


def test_data_with_spaces_is_kept_byte_exact() -> None:
    for group in STANDARD_FRAME:
        assert parse_group(encode_group(group, S)[1:-1]) == group
    assert parse_group(encode_group(Group("MSG1", " A  B "), H)[1:-1]).data == " A  B "
    assert parse_group(encode_group(Group("X", ""), H)[1:-1]) == Group("X", "")


def test_both_checksum_variants_are_accepted_and_counted() -> None:
    stream = _frame(HISTORIC_FRAME[:3], H, Variant.MODE2) + _frame(HISTORIC_FRAME[:2], H)
    stream += _frame(STANDARD_FRAME[:3], S, Variant.MODE1)
    frames, decoder = _decode(stream)
    assert [len(f.groups) for f in frames] == [3, 2, 3]
    assert not any(f.bad_groups for f in frames)
    assert (decoder.counters.checksum_mode1, decoder.counters.checksum_mode2) == (5, 3)


@pytest.mark.parametrize(
    ("raw", "offset", "degraded", "naive"),
    [
        ("H230301091834", 1, False, (2023, 3, 1, 9, 18, 34)),
        ("E230715235959", 2, False, (2023, 7, 15, 23, 59, 59)),
        ("h230301091834", 1, True, (2023, 3, 1, 9, 18, 34)),
        ("e991231000000", 2, True, (2099, 12, 31, 0, 0, 0)),
        (" 230301091834", None, False, (2023, 3, 1, 9, 18, 34)),
    ],
)
def test_horodate_parses_season_offset_and_degraded_clock(
    raw: str, offset: int | None, degraded: bool, naive: tuple[int, ...]
) -> None:
    h = Horodate.parse(raw)
    assert h.raw == raw and h.degraded is degraded
    assert h.time.replace(tzinfo=None) == datetime(*naive)
    assert h.time.utcoffset() == (None if offset is None else timedelta(hours=offset))
    assert Horodate.build(h.time, degraded) == h


@pytest.mark.parametrize("raw", ["X230301091834", "H231301091834", "H230230091834", "H2303010918", "H23030109183a"])
def test_bad_horodate_is_a_protocol_error(raw: str) -> None:
    with pytest.raises(TicError) as err:
        Horodate.parse(raw)
    assert isinstance(err.value, ProtocolError) and err.value.reason == "horodate"


def test_horodate_build_refuses_other_offsets() -> None:
    with pytest.raises(TicError):
        Horodate.build(datetime(2023, 3, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("group", "mode"),
    [
        (Group("BAD LABEL", "1"), H),
        (Group("", "1"), S),
        (Group("X", "a\tb"), S),
        (Group("X", "\r"), H),
        (Group("X", "é"), H),
        (Group("DATE", "", Horodate.parse("H230301091834")), H),
    ],
)
def test_encoder_refuses_what_a_meter_cannot_send(group: Group, mode: Mode) -> None:
    with pytest.raises(TicError):
        encode_group(group, mode)


def test_three_phase_historic_short_frame() -> None:
    short = [Group("ADCO", "021528603314"), Group("IINST1", "046"), Group("IINST2", "012")]
    short += [Group("IINST3", "001"), Group("ADIR1", "046")]
    long = [Group("ADCO", "021528603314"), Group("IINST1", "006"), Group("PAPP", "01250")]
    frames, _ = _decode(_frame(short, H) + _frame(long, H))
    assert [f.short for f in frames] == [True, False]
    assert frames[0].groups["ADIR1"].data == "046" and not frames[0].bad_groups


# --- the stream decoder: one bad thing costs only itself ------------------


def test_bad_checksum_rejects_that_group_only() -> None:
    frame = bytearray(_frame(HISTORIC_FRAME, H))
    at = frame.index(b"PAPP 00680 ") + len(b"PAPP 00680 ")
    frame[at] ^= 0x01
    frames, decoder = _decode(bytes(frame))
    assert frames[0].complete and len(frames[0].groups) == len(HISTORIC_FRAME) - 1
    assert [(b.label, b.reason) for b in frames[0].bad_groups] == [("PAPP", "checksum")]
    assert decoder.counters.groups_bad == 1


def test_missing_tab_rejects_that_group_only() -> None:
    frame = _frame(STANDARD_FRAME, S).replace(b"SINSTS\t00240", b"SINSTS00240", 1)
    frames, _ = _decode(frame)
    assert "SINSTS" not in frames[0].groups and len(frames[0].groups) == len(STANDARD_FRAME) - 1
    assert [(b.raw, b.reason) for b in frames[0].bad_groups] == [(b"SINSTS00240\tL", "shape")]
    frame = _frame(STANDARD_FRAME, S).replace(b"00240\t", b"00240", 1)  # tab before the checksum lost
    frames, _ = _decode(frame)
    assert [b.reason for b in frames[0].bad_groups] == ["shape"] and "SINSTS" not in frames[0].groups


def test_truncated_frame_keeps_its_good_groups_and_is_incomplete() -> None:
    whole = _frame(HISTORIC_FRAME, H)
    cut = whole[: whole.index(b"\nPAPP") + 4]  # ... then the line drops, the next frame starts
    frames, decoder = _decode(cut + whole)
    assert [f.complete for f in frames] == [False, True]
    assert list(frames[0].groups) == [g.label for g in HISTORIC_FRAME[:6]]
    assert [b.reason for b in frames[0].bad_groups] == ["unterminated"]
    assert decoder.counters.frames_truncated == 1


def test_eot_interrupted_frame_keeps_its_good_groups() -> None:
    whole = _frame(STANDARD_FRAME, S)
    interrupted = whole[: whole.index(b"\nMSG1")] + bytes((EOT,))
    frames, decoder = _decode(interrupted + whole)
    assert [f.complete for f in frames] == [False, True]
    assert list(frames[0].groups) == [g.label for g in STANDARD_FRAME[:5]] and not frames[0].bad_groups
    assert decoder.counters.frames_interrupted == 1


def test_noise_between_frames_is_dropped() -> None:
    whole = _frame(HISTORIC_FRAME, H)
    noise = b"\x00\xff\r\n\x03garbage PAPP 99999 X\r\x04"
    frames, decoder = _decode(noise + whole + noise + whole)
    assert len(frames) == 2 and all(f.complete and not f.bad_groups for f in frames)
    assert decoder.counters.noise_bytes == 2 * len(noise)


def test_junk_inside_a_frame_is_a_bad_group_not_a_lost_frame() -> None:
    whole = _frame(HISTORIC_FRAME, H)
    frames, _ = _decode(whole.replace(b"\r\nPTEC", b"\r##\nPTEC", 1))
    assert len(frames[0].groups) == len(HISTORIC_FRAME)
    assert [(b.raw, b.reason) for b in frames[0].bad_groups] == [(b"##", "junk")]


def test_stream_starting_mid_frame_drops_only_the_first_partial_frame() -> None:
    whole = _frame(STANDARD_FRAME, S)
    frames, decoder = _decode(whole[len(whole) // 2 :] + whole + whole)
    assert len(frames) == 2 and all(f.complete and len(f.groups) == len(STANDARD_FRAME) for f in frames)
    assert decoder.counters.noise_bytes == len(whole) - len(whole) // 2


def test_duplicate_label_keeps_the_first() -> None:
    frames, _ = _decode(_frame([Group("IINST", "003"), Group("IINST", "004")], H))
    assert frames[0].groups["IINST"].data == "003"
    assert [(b.label, b.reason) for b in frames[0].bad_groups] == [("IINST", "duplicate")]


def test_fixed_mode_rejects_the_other_modes_groups() -> None:
    frames, _ = _decode(_frame(STANDARD_FRAME[:2], S), mode=H)
    assert not frames[0].groups and {b.reason for b in frames[0].bad_groups} == {"shape"}
    assert frames[0].mode is H


def test_memory_stays_bounded_without_frame_ends() -> None:
    decoder = TicDecoder(max_frame=512)
    for _ in range(200):
        assert decoder.feed(b"\nPAPP 00680 /\r" * 10) == []
    assert len(decoder._buf) == 0 and decoder.counters.noise_bytes == 200 * 140
    decoder.feed(bytes((STX,)))
    for _ in range(200):
        decoder.feed(b"\nPAPP 00680 /\r" * 10)
        assert len(decoder._buf) <= 512
    assert decoder.counters.frames_oversized >= 1
    frames = decoder.feed(_frame(HISTORIC_FRAME, H))
    assert [len(f.groups) for f in frames] == [len(HISTORIC_FRAME)]


def test_flush_returns_the_frame_in_progress() -> None:
    decoder = TicDecoder()
    assert decoder.feed(_frame(HISTORIC_FRAME, H)[:-10]) == []
    last = decoder.flush()
    assert last is not None and not last.complete and len(last.groups) == len(HISTORIC_FRAME) - 1
    assert decoder.flush() is None


def test_detect_mode() -> None:
    assert detect_mode(_frame(HISTORIC_FRAME, H)) is H
    assert detect_mode(_frame(STANDARD_FRAME, S)[10:]) is S  # mid-frame is enough
    assert detect_mode(b"\x00" * 100) is None
    assert detect_mode(_frame(HISTORIC_FRAME[:1], H)) is None  # one group is not enough evidence
    garbled = bytes(b ^ 0x15 for b in _frame(STANDARD_FRAME, S))  # as read at the wrong speed
    assert detect_mode(garbled) is None


# --- properties -----------------------------------------------------------

labels = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=10)
data = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
times = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59)).map(lambda t: t.replace(microsecond=0))
horodates = st.builds(
    Horodate.build,
    st.tuples(times, st.sampled_from([None, 1, 2])).map(
        lambda tz: tz[0] if tz[1] is None else tz[0].replace(tzinfo=timezone(timedelta(hours=tz[1])))
    ),
    st.booleans(),
)


@st.composite
def frames_to_send(draw: st.DrawFn) -> tuple[Mode, Variant, list[Group]]:
    mode = draw(st.sampled_from(Mode))
    variant = draw(st.sampled_from(Variant))
    horodate = st.none() if mode is H else st.none() | horodates
    groups = draw(st.lists(st.builds(Group, labels, data, horodate), max_size=12, unique_by=lambda g: g.label))
    return mode, variant, groups


def _chunks(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]


@settings(max_examples=150, deadline=None)
@given(frames_to_send(), st.lists(st.integers(0, 10_000), max_size=8), st.booleans())
def test_encoder_round_trips_in_any_chunking(
    sent: tuple[Mode, Variant, list[Group]], cuts: list[int], parity: bool
) -> None:
    mode, variant, groups = sent
    stream = b"\x00noise" + _frame(groups, mode, variant) * 2
    if parity:
        stream = bytes(b | 0x80 for b in stream)
    decoder = TicDecoder()
    frames = [f for chunk in _chunks(stream, cuts) for f in decoder.feed(chunk)]
    assert len(frames) == 2
    for frame in frames:
        assert frame.complete and not frame.bad_groups
        assert list(frame.groups.values()) == groups
        assert frame.mode is (mode if groups else None)
    assert decoder.feed(b"") == [] and decoder.flush() is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 1000), max_size=5), st.sampled_from([None, H, S]))
def test_random_bytes_never_raise(junk: bytes, cuts: list[int], mode: Mode | None) -> None:
    decoder = TicDecoder(mode, max_frame=256)
    frames = [f for chunk in _chunks(junk, cuts) for f in decoder.feed(chunk)]
    assert len(decoder._buf) <= 256
    assert len(frames) <= bytes(b & 0x7F for b in junk).count(STX)  # a frame is never invented (7-bit line)
    detect_mode(junk)
    try:
        parse_group(junk)
    except ProtocolError:
        pass


REAL = _frame(HISTORIC_FRAME, H) + _frame(STANDARD_FRAME, S)


def _layout() -> list[tuple[int, list[tuple[Group, int, int]]]]:
    """For each frame of REAL: its STX offset and each group's first and last byte."""
    frames, offset = [], 0
    for groups, mode in ((HISTORIC_FRAME, H), (STANDARD_FRAME, S)):
        stx, spans = offset, []
        offset += 1
        for g in groups:
            size = len(encode_group(g, mode))
            spans.append((g, offset, offset + size - 1))
            offset += size
        frames.append((stx, spans))
        offset += 1  # ETX
    return frames


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(REAL) - 1), st.integers(0, 255)), min_size=1, max_size=6))
def test_mutated_real_frames_lose_at_most_the_touched_groups(edits: list[tuple[int, int]]) -> None:
    stream = bytearray(REAL)
    for at, value in edits:
        stream[at] = value
    decoder = TicDecoder()
    frames = decoder.feed(bytes(stream))
    last = decoder.flush()
    frames += [last] if last is not None else []
    got = [g for f in frames for g in f.groups.values()]
    marks = any(value & 0x7F in (STX, ETX, EOT) for _, value in edits)  # may cut a frame in two
    for stx, spans in _layout():
        if marks or any(at == stx for at, _ in edits):
            continue  # a frame whose STX is lost is dropped whole, as a partial frame
        for group, start, end in spans:
            # an edit next to a group may break its LF or CR, or the next group's LF
            if not any(start - 1 <= at <= end + 1 for at, _ in edits):
                assert group in got
    # The line is 7-bit: the decoder drops the parity bit, so 0x83 ends a frame as 0x03 does.
    assert decoder.counters.frames_complete <= bytes(b & 0x7F for b in stream).count(ETX)
