"""Frame-counter reconstruction, replay rejection and multi-gateway deduplication."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.lora.dedup import Deduplicated, Deduplicator, frame_key
from zaas_edge.drivers.lora.fcnt import MAX_FCNT_GAP, FcntStatus, FrameCounter, reconstruct_fcnt
from zaas_edge.drivers.lora.lorawan import build_data_frame, open_frame, parse_phy_payload

NWK = bytes(range(16))
APP = bytes(range(16, 32))

# ---------------------------------------------------------------- fcnt


@pytest.mark.parametrize(
    ("last", "fcnt16", "status", "fcnt32"),
    [
        (None, 0, FcntStatus.NEW, 0),
        (None, 500, FcntStatus.NEW, 500),
        (0, 1, FcntStatus.NEW, 1),
        (10, 10, FcntStatus.DUPLICATE, 10),
        (0xFFFF, 0x0000, FcntStatus.NEW, 0x10000),  # rollover of the 16 bits on air
        (0x1FFF0, 0x0005, FcntStatus.NEW, 0x20005),
        (0x10005, 0x0006, FcntStatus.NEW, 0x10006),
        (100, 100 + MAX_FCNT_GAP, FcntStatus.NEW, 100 + MAX_FCNT_GAP),
        (100, 101 + MAX_FCNT_GAP, FcntStatus.REJECTED, 101 + MAX_FCNT_GAP),  # too far ahead, nothing behind
        (1000, 999, FcntStatus.REJECTED, 999),  # replay of the previous frame
        (0x10005, 0xFFFF, FcntStatus.REJECTED, 0xFFFF),  # replay from before the rollover
        (0xFFFFFFFF, 0x0000, FcntStatus.REJECTED, 0),  # 32-bit counter exhausted
    ],
)
def test_reconstruction_table(last, fcnt16, status, fcnt32) -> None:
    check = reconstruct_fcnt(last, fcnt16)
    assert (check.status, check.fcnt32) == (status, fcnt32)
    assert check.accepted is (status is FcntStatus.NEW)
    if status is FcntStatus.REJECTED:
        assert check.reason


def test_reset_device_is_rejected_with_a_hint() -> None:
    check = reconstruct_fcnt(40000, 0)
    assert check.status is FcntStatus.REJECTED
    assert "restarted its counter" in check.reason and check.fcnt32 == 0


def test_frame_counter_state_only_moves_on_accept() -> None:
    state = FrameCounter()
    check = state.check(3)
    assert check.accepted and state.last is None
    state = state.accept(check.fcnt32)
    assert state.last == 3
    assert state.check(3).status is FcntStatus.DUPLICATE
    assert state.check(2).status is FcntStatus.REJECTED
    with pytest.raises(ValueError, match="does not move past"):
        state.accept(3)


def test_smaller_max_gap_is_honoured() -> None:
    assert FrameCounter(last=10, max_gap=5).check(16).status is FcntStatus.REJECTED
    assert FrameCounter(last=10, max_gap=5).check(15).fcnt32 == 15


def test_reconstructed_counter_is_confirmed_by_the_mic_across_rollover() -> None:
    state = FrameCounter(last=0xFFFE)
    for fcnt32 in (0xFFFF, 0x10000, 0x10001):
        frame = parse_phy_payload(build_data_frame(dev_addr=0x260B1234, fcnt32=fcnt32, fport=10,
                                                   payload=b"%d" % fcnt32, nwk_skey=NWK, app_skey=APP))
        check = state.check(frame.fcnt16)
        assert check.accepted and check.fcnt32 == fcnt32
        assert open_frame(frame, check.fcnt32, NWK, APP) == b"%d" % fcnt32
        state = state.accept(check.fcnt32)
    assert state.last == 0x10001


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1 - MAX_FCNT_GAP), st.lists(st.integers(1, MAX_FCNT_GAP), min_size=1, max_size=30))
def test_any_forward_sequence_within_the_gap_is_rebuilt_exactly(start: int, steps: list[int]) -> None:
    state = FrameCounter(last=start)
    true = start
    for step in steps:
        if true + step > 2**32 - 1:
            break
        true += step
        check = state.check(true & 0xFFFF)
        assert check.status is FcntStatus.NEW and check.fcnt32 == true
        state = state.accept(check.fcnt32)
    assert state.last == true  # monotonic: the state is exactly the device's counter


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF))
def test_never_accepts_a_counter_at_or_below_the_last(last: int, fcnt16: int) -> None:
    check = reconstruct_fcnt(last, fcnt16)
    assert check.fcnt32 & 0xFFFF == fcnt16
    if check.accepted:
        assert last < check.fcnt32 <= last + MAX_FCNT_GAP
    elif check.status is FcntStatus.DUPLICATE:
        assert check.fcnt32 == last


# ---------------------------------------------------------------- dedup


def test_copies_within_the_window_keep_the_best_rssi() -> None:
    d: Deduplicator[str] = Deduplicator(window=0.2, memory=5.0)
    assert d.offer("k", "gw-a", -110.0, now=10.0) is True
    assert d.offer("k", "gw-b", -80.0, now=10.05) is False
    assert d.offer("k", "gw-c", -95.0, now=10.1) is False
    assert d.next_deadline() == pytest.approx(10.2)
    assert d.pop_due(10.19) == []
    assert d.pop_due(10.2) == [Deduplicated("k", "gw-b", -80.0, 3)]
    assert d.pop_due(11.0) == []  # released once only


def test_late_copy_is_counted_and_dropped_then_forgotten() -> None:
    d: Deduplicator[str] = Deduplicator(window=0.2, memory=5.0)
    d.offer("k", "a", -100.0, now=0.0)
    assert [x.item for x in d.pop_due(0.3)] == ["a"]
    assert d.offer("k", "late", -50.0, now=1.0) is False
    assert d.late_copies == 1 and d.pop_due(2.0) == []
    assert d.offer("other", "x", None, now=6.0) is True  # expires "k"
    assert len(d) == 1
    assert d.offer("k", "again", -90.0, now=6.1) is True  # a new frame with the same key after memory


def test_missing_rssi_never_beats_a_measured_one() -> None:
    d: Deduplicator[str] = Deduplicator(window=0.1)
    d.offer("k", "none", None, now=0.0)
    d.offer("k", "measured", -120.0, now=0.01)
    d.offer("k", "none2", None, now=0.02)
    assert [x.item for x in d.pop_due(0.1)] == ["measured"]


def test_frame_key_is_devaddr_fcnt_mic() -> None:
    raw = build_data_frame(dev_addr=5, fcnt32=9, fport=1, payload=b"x", nwk_skey=NWK, app_skey=APP)
    frame = parse_phy_payload(raw)
    assert frame_key(frame) == (5, 9, raw[-4:])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(-140, -20), st.floats(0, 0.5)), max_size=40))
def test_every_frame_is_released_once_with_its_best_copy(receptions) -> None:
    d: Deduplicator[tuple[int, float]] = Deduplicator(window=1.0, memory=100.0)
    now = 0.0
    best: dict[int, float] = {}
    for key, rssi, dt in receptions:
        now += dt
        d.offer(key, (key, rssi), rssi, now)
        best[key] = max(best.get(key, -1000.0), rssi)
    released = d.pop_due(now + 1.0)
    assert sorted(r.key for r in released) == sorted(best)
    for r in released:
        assert r.rssi == best[r.key] and r.item == (r.key, best[r.key])
