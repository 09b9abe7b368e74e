"""TIC alarms: over-power and breaker open, each raised once and cleared once.

Historic ``ADPS`` / ``ADIR`` are sent only while over the reference current
(Enedis-NOI-CPT_54E §6.1), so the clear waits for ``clear_after`` frames
without them; standard ``STGE`` bit 7 and bits 1..3 are in every frame.
"""

from __future__ import annotations

import pytest
from zaas_edge.drivers.tic import (
    DEFAULT_CLEAR_AFTER,
    AlarmKind,
    AlarmTracker,
    BadGroup,
    Breaker,
    Frame,
    Group,
    Mode,
    interpret,
)

H, S = Mode.HISTORIC, Mode.STANDARD


def _interp(groups: dict[str, str], mode: Mode, complete: bool = True, bad: tuple[str, ...] = ()):
    return interpret(
        Frame(complete, {k: Group(k, v) for k, v in groups.items()}, [BadGroup(b"", "checksum", b) for b in bad], mode)
    )


NORMAL = {"ADCO": "021528603314", "OPTARIF": "BASE", "ISOUSC": "30", "IINST": "012", "PAPP": "02830"}
OVER = {**NORMAL, "IINST": "032", "ADPS": "032", "PAPP": "07360"}


def _kinds(transitions) -> list[tuple[AlarmKind, bool]]:
    return [(t.kind, t.active) for t in transitions]


def test_historic_adps_raises_once_and_clears_after_three_quiet_frames() -> None:
    tracker = AlarmTracker()
    assert DEFAULT_CLEAR_AFTER == 3 and tracker.clear_after == 3
    assert tracker.update(_interp(NORMAL, H)) == []
    (raised,) = tracker.update(_interp(OVER, H))
    assert (raised.kind, raised.active) == (AlarmKind.OVER_POWER, True)
    assert raised.values["overcurrent"] == 32 and raised.values["apparent_power"] == 7360
    assert raised.values["subscribed_current"] == 30 and "ADPS" in raised.reason
    assert tracker.update(_interp(OVER, H)) == [] and tracker.active == {AlarmKind.OVER_POWER}
    assert tracker.update(_interp(NORMAL, H)) == []
    assert tracker.update(_interp(NORMAL, H)) == []
    (cleared,) = tracker.update(_interp(NORMAL, H))
    assert (cleared.kind, cleared.active) == (AlarmKind.OVER_POWER, False) and cleared.values["apparent_power"] == 2830
    assert tracker.active == frozenset() and tracker.update(_interp(NORMAL, H)) == []


def test_historic_adps_returning_before_the_clear_keeps_one_alarm() -> None:
    tracker = AlarmTracker()
    frames = [OVER, NORMAL, NORMAL, OVER, NORMAL, NORMAL, OVER]
    assert [_kinds(tracker.update(_interp(f, H))) for f in frames] == [[(AlarmKind.OVER_POWER, True)]] + [[]] * 6


def test_frames_that_cannot_tell_do_not_count_towards_the_clear() -> None:
    tracker = AlarmTracker()
    tracker.update(_interp(OVER, H))
    assert tracker.update(_interp(NORMAL, H, complete=False)) == []  # interrupted by EOT
    assert tracker.update(_interp(NORMAL, H, bad=("ADPS",))) == []  # ADPS lost to its checksum
    assert tracker.update(_interp(NORMAL, H, complete=False)) == []
    assert tracker.active == {AlarmKind.OVER_POWER}
    assert tracker.update(_interp(NORMAL, H)) == [] and tracker.update(_interp(NORMAL, H)) == []
    assert _kinds(tracker.update(_interp(NORMAL, H))) == [(AlarmKind.OVER_POWER, False)]


@pytest.mark.parametrize("n", [1, 5])
def test_clear_after_is_configurable(n: int) -> None:
    tracker = AlarmTracker(clear_after=n)
    tracker.update(_interp(OVER, H))
    got = [_kinds(tracker.update(_interp(NORMAL, H))) for _ in range(n)]
    assert got == [[]] * (n - 1) + [[(AlarmKind.OVER_POWER, False)]]
    with pytest.raises(ValueError, match="clear_after"):
        AlarmTracker(clear_after=0)


def test_three_phase_short_frames_and_the_long_frame_between() -> None:
    """20 short frames (ADIR) then 1 long frame (no ADIR) while over: one alarm, no flapping."""
    short = {
        "ADIR1": "062",
        "ADIR2": "000",
        "ADIR3": "000",
        "ADCO": "021528603314",
        "IINST1": "062",
        "IINST2": "010",
        "IINST3": "004",
    }
    long = {
        "ADCO": "021528603314",
        "OPTARIF": "BASE",
        "IINST1": "062",
        "IINST2": "010",
        "IINST3": "004",
        "PAPP": "16000",
    }
    tracker = AlarmTracker()
    cycle = [short] * 20 + [long]
    got = [t for f in cycle * 3 for t in tracker.update(_interp(f, H))]
    assert _kinds(got) == [(AlarmKind.OVER_POWER, True)] and "ADIR1" in got[0].reason
    assert got[0].values["overcurrent_l1"] == 62
    # the minute after: short frames go on with every ADIR at 000, then long frames only
    quiet = {**short, "ADIR1": "000", "IINST1": "020"}
    got = [t for f in [quiet, quiet, quiet] for t in tracker.update(_interp(f, H))]
    assert _kinds(got) == [(AlarmKind.OVER_POWER, False)]


def _stge(code: int) -> str:
    return f"{code | 1 << 17:08X}"


def test_standard_over_power_follows_stge_bit_7() -> None:
    tracker = AlarmTracker()
    base = {"PREF": "06", "PCOUP": "06", "SINSTS": "05200"}
    assert tracker.update(_interp({**base, "STGE": _stge(0)}, S)) == []
    (raised,) = tracker.update(_interp({**base, "SINSTS": "07900", "STGE": _stge(1 << 7)}, S))
    assert (raised.kind, raised.active) == (AlarmKind.OVER_POWER, True) and "bit 7" in raised.reason
    assert raised.values["apparent_power"] == 7900 and raised.values["breaking_power"] == 6
    assert tracker.update(_interp({**base, "STGE": _stge(1 << 7)}, S)) == []
    assert tracker.update(_interp(base, S)) == []  # no STGE (bad checksum): nothing changes
    assert _kinds(tracker.update(_interp({**base, "STGE": _stge(0)}, S))) == [(AlarmKind.OVER_POWER, False)]


@pytest.mark.parametrize("code", range(1, 8))
def test_breaker_open_carries_the_meters_reason(code: int) -> None:
    tracker = AlarmTracker()
    (raised,) = tracker.update(_interp({"STGE": _stge(code << 1)}, S))
    assert (raised.kind, raised.active) == (AlarmKind.BREAKER_OPEN, True)
    assert raised.values["breaker"] == list(Breaker)[code].value and "breaker" in raised.reason
    assert tracker.update(_interp({"STGE": _stge(code << 1)}, S)) == []
    (cleared,) = tracker.update(_interp({"STGE": _stge(0)}, S))
    assert (cleared.kind, cleared.active, cleared.values["breaker"]) == (AlarmKind.BREAKER_OPEN, False, "closed")


def test_a_trip_is_seen_as_one_of_each() -> None:
    """Over the reference, the meter trips on over-power (S drops to 0), then is re-armed."""
    tracker = AlarmTracker()
    frames = [
        {"SINSTS": "04000", "STGE": _stge(0)},
        {"SINSTS": "09000", "STGE": _stge(1 << 7)},
        {"SINSTS": "09000", "STGE": _stge(1 << 7)},
        {"SINSTS": "00000", "STGE": _stge(1 << 1)},  # open on over-power
        {"SINSTS": "00000", "STGE": _stge(1 << 1)},
        {"SINSTS": "01000", "STGE": _stge(0)},  # re-armed
    ]
    got = [_kinds(tracker.update(_interp({"PCOUP": "06", **f}, S))) for f in frames]
    assert got == [
        [],
        [(AlarmKind.OVER_POWER, True)],
        [],
        [(AlarmKind.OVER_POWER, False), (AlarmKind.BREAKER_OPEN, True)],
        [],
        [(AlarmKind.BREAKER_OPEN, False)],
    ]


def test_historic_frames_never_raise_the_breaker_alarm() -> None:
    tracker = AlarmTracker()
    assert all(tracker.update(_interp(NORMAL, H)) == [] for _ in range(3))
    assert tracker.update(interpret(Frame(False, {}, [], None))) == []
