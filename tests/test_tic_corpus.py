"""The TIC decoder against real Linky captures (``shared/corpora/tic``).

Each capture starts and ends mid-frame, as a real serial read does. The first
complete frame must decode to exactly the labels, data and horodates the index
gives, the number of complete frames must match, and the trailing partial frame
must come out of ``flush`` as an incomplete frame with its unterminated group.
"""

from __future__ import annotations

import pytest
from zaas_edge.drivers.tic import Mode, TicDecoder, detect_mode

from tests.corpora import corpus_cases, corpus_dir


def _decode(capture: dict, chunk: int) -> tuple[list, TicDecoder]:
    data = (corpus_dir("tic") / capture["file"]).read_bytes()
    assert len(data) == capture["size"]
    decoder = TicDecoder()
    frames = []
    for i in range(0, len(data), chunk):
        frames += decoder.feed(data[i : i + chunk])
    last = decoder.flush()
    if last is not None:
        frames.append(last)
    return frames, decoder


@pytest.mark.parametrize("capture", corpus_cases("tic", "captures"))
@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_first_complete_frame_matches_the_index(capture: dict, chunk: int) -> None:
    frames, decoder = _decode(capture, chunk)
    complete = [f for f in frames if f.complete]
    assert len(complete) == capture["complete_frames"]
    first = complete[0]
    assert first.mode is Mode(1200 if capture["mode"] == "historic" else 9600)
    assert len(first.groups) == capture["groups_in_first_complete_frame"]
    assert [b.label for b in first.bad_groups] == capture["first_complete_frame_bad_checksum"]
    expected = capture["first_complete_frame"]
    assert list(first.groups) == list(expected)  # order as sent
    for label, want in expected.items():
        group = first.groups[label]
        assert group.data == want["data"], label
        assert (group.horodate.raw if group.horodate else None) == want.get("horodate"), label
    assert decoder.counters.frames_complete == capture["complete_frames"]
    assert decoder.counters.parity_stripped == 0


@pytest.mark.parametrize("capture", corpus_cases("tic", "captures"))
def test_only_the_unterminated_tail_is_rejected(capture: dict) -> None:
    frames, decoder = _decode(capture, 1 << 20)
    incomplete = [f for f in frames if not f.complete]
    assert len(incomplete) == capture["incomplete_frames"]
    bad = [(i, b.raw.decode(), b.reason) for i, f in enumerate(frames) for b in f.bad_groups]
    assert bad == [(g["frame_index"], g["raw"], g["reason"]) for g in capture["bad_groups"]]
    assert decoder.counters.groups_bad == len(capture["bad_groups"])


@pytest.mark.parametrize("capture", corpus_cases("tic", "captures"))
def test_capture_read_8n1_decodes_the_same(capture: dict) -> None:
    """A port opened 8N1 hands over the even-parity bit as bit 7: stripped and counted."""
    data = (corpus_dir("tic") / capture["file"]).read_bytes()
    with_parity = bytes(b | 0x80 if bin(b).count("1") % 2 else b for b in data)
    plain, marked = TicDecoder(), TicDecoder()
    assert marked.feed(with_parity) == plain.feed(data)
    assert marked.counters.parity_stripped == sum(1 for b in with_parity if b & 0x80) > 0


@pytest.mark.parametrize("capture", corpus_cases("tic", "captures"))
def test_mode_is_detected_from_the_capture(capture: dict) -> None:
    data = (corpus_dir("tic") / capture["file"]).read_bytes()
    assert detect_mode(data) is Mode(1200 if capture["mode"] == "historic" else 9600)
