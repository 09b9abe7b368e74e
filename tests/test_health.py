"""DeviceHealth, the one device-availability state machine: tables of cases and hypothesis."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zaas_edge.health import Counter, DeviceHealth, DeviceStatus, Transition, offline_alarm_id


def test_offline_after_n_failures_in_a_row_and_back_on_the_first_answer() -> None:
    h = DeviceHealth("m1", offline_after=3)
    assert h.online is None
    assert h.success(0.0, latency_s=0.02) == Transition("m1", True, None, "answering", 0)
    assert [h.failure(t, "no answer") for t in (1.0, 2.0)] == [None, None]
    assert h.success(3.0) is None  # the run of failures is broken: nothing to say
    assert [h.failure(t, "no answer") for t in (4.0, 5.0)] == [None, None]
    assert h.failure(6.0, "no answer") == Transition("m1", False, True, "3 failed in a row: no answer", 3)
    assert h.failure(7.0, "no answer") is None  # offline once, however long it stays silent
    assert h.success(8.0) == Transition("m1", True, False, "answering again", 4)
    assert (h.polls, h.failed_polls, h.consecutive_failures, h.online) == (9, 6, 0, True)


def test_a_device_that_never_answers_goes_offline_from_the_unknown_state() -> None:
    h = DeviceHealth("m1", offline_after=1)
    change = h.failure(0.0, "port gone")
    assert change is not None and (change.online, change.previous, change.state) == (False, None, "offline")
    assert h.last_error == "port gone"


def test_silence_takes_a_listened_to_device_offline_and_a_frame_brings_it_back() -> None:
    h = DeviceHealth("tag", silent_after_s=60.0, now=100.0)
    assert h.silence(159.0) is None  # never heard yet, but not silent long enough since the start
    change = h.silence(160.0)
    assert change is not None and not change.online and "nothing valid heard for 60 s" in change.reason
    assert h.silence(1000.0) is None
    assert h.success(1001.0) == Transition("tag", True, False, "answering again", 0)
    assert h.silence(1060.0) is None and h.silence(1061.0) is not None


def test_without_a_silence_limit_silence_says_nothing() -> None:
    h = DeviceHealth("m1")
    assert h.silence(1e9) is None and h.online is None


def test_latency_is_the_last_sample_and_a_running_average() -> None:
    h = DeviceHealth("m1")
    h.latency(0.010)
    h.success(0.0, latency_s=0.020)
    s = h.status(5.0)
    assert s.latency_last_ms == 20.0 and s.latency_avg_ms == 11.0
    assert s.last_seen_s == 5.0


def test_status_is_a_frozen_value_whose_dict_is_json() -> None:
    h = DeviceHealth("m1")
    h.count(Counter.TIMEOUTS, 2)
    h.count(Counter.CHECKSUM_ERRORS)
    h.failure(1.0, "timeout")
    s = h.status(2.0, {"unit": 3, "bus": "tcp:127.0.0.1:502", "online": "not this"})
    assert isinstance(s, DeviceStatus)
    with pytest.raises(AttributeError):
        s.online = True  # type: ignore[misc]
    d = json.loads(json.dumps(s.as_dict()))
    assert d["timeouts"] == 2 and d["checksum_errors"] == 1 and d["unit"] == 3
    assert d["online"] is None and d["failed_polls"] == 1 and d["last_seen_s"] is None  # fields win


def test_the_alarm_id_and_bad_limits() -> None:
    assert offline_alarm_id("gas-1") == "device.gas-1.offline"
    with pytest.raises(ValueError):
        DeviceHealth("x", offline_after=0)
    with pytest.raises(ValueError):
        DeviceHealth("x", silent_after_s=0)


_observation = st.one_of(
    st.tuples(st.just("success"), st.floats(0, 10), st.none() | st.floats(0, 5)),
    st.tuples(st.just("failure"), st.floats(0, 10), st.text(max_size=5)),
    st.tuples(st.just("silence"), st.floats(0, 100), st.none()),
)


@given(st.integers(1, 5), st.none() | st.floats(0.5, 50), st.lists(_observation, max_size=60))
def test_any_observations_give_alternating_transitions(offline_after: int, silent: float | None,
                                                       seq: list[tuple[str, float, object]]) -> None:
    h = DeviceHealth("d", offline_after=offline_after, silent_after_s=silent)
    now = 0.0
    changes: list[Transition] = []
    for kind, dt, arg in seq:
        now += dt
        if kind == "success":
            change = h.success(now, arg)  # type: ignore[arg-type]
        elif kind == "failure":
            change = h.failure(now, str(arg))
        else:
            change = h.silence(now)
        if change is not None:
            changes.append(change)
            assert h.online is change.online
    for before, after in zip(changes, changes[1:], strict=False):
        assert before.online != after.online  # never offline (or online) twice in a row
        assert after.previous is before.online
    if changes:
        assert changes[0].previous is None
    assert h.polls == sum(1 for k, _, _ in seq if k != "silence")
    assert h.consecutive_failures <= h.failed_polls <= h.polls
