"""Properties of the alarm evaluator (hypothesis): whatever the readings, transitions of one id alternate
raise, clear, raise…, starting with a raise; two raises of one id are never closer than the flap
interval; a summary stands for its members (none of them is raised on its own meanwhile); and garbage
values never raise an exception."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zaas_edge.model import Quality, Reading
from zaas_edge.rules.alarms import AlarmInputs, AlarmsSection, engine, evaluate, initial_state, restore, snapshot

FLAP = 120.0
RULES: list[dict[str, Any]] = [
    {"id": "hi", "kind": "threshold", "points": ["m-*/v"], "above": 50, "hysteresis": 5, "delay_s": 20,
     "summary_after": 3},
    {"id": "st", "kind": "stale", "points": ["m-*/v"], "after_s": 60, "summary_after": 3},
    {"id": "flag", "kind": "fault", "mode": "flag", "points": ["m-*/v"], "summary_after": 0},
    {"id": "rate", "kind": "threshold", "derive": "rate", "points": ["m-1/v"], "above": 3600},
    {"id": "sum", "kind": "threshold", "derive": "sum", "points": ["m-1/v", "m-2/v"], "below": 10},
    {"id": "leak", "kind": "leak", "mode": "flow", "points": ["m-*/v"], "window_s": 90, "sample_s": 10},
]
SECTION = AlarmsSection.model_validate({"flap_interval_s": FLAP, "summary_hold_s": 15, "rules": RULES})

values = st.one_of(st.floats(-100, 200), st.sampled_from([0.0, 49.0, 51.0, 100.0]),
                   st.just(float("nan")), st.just(float("inf")))
steps = st.lists(
    st.tuples(st.floats(0.5, 40),  # seconds to the next step
              st.lists(st.tuples(st.integers(1, 5), values, st.sampled_from(list(Quality))), max_size=6)),
    min_size=1, max_size=60)


def _run(plan: list[Any], restart_at: int | None = None) -> list[tuple[float, Any]]:
    state = initial_state(SECTION)
    now, log = 0.0, []
    for i, (dt, readings) in enumerate(plan):
        now += dt
        if restart_at is not None and i == restart_at:
            state = restore(initial_state(SECTION), snapshot(state), now)
        batch = tuple(Reading(f"m-{d}/v", v, "", int((1.8e9 + now) * 1e9), int(now * 1e9), "b", True, q)
                      for d, v, q in readings)
        state, out = evaluate(state, AlarmInputs(batch, wall_s=1.8e9 + now), now)
        log += [(now, t) for t in out]
    return log


def _check(log: list[tuple[float, Any]]) -> None:
    by_id: dict[str, list[tuple[float, bool]]] = {}
    for now, t in log:
        by_id.setdefault(t.alarm_id, []).append((now, t.active))
    for aid, flips in by_id.items():
        states = [a for _, a in flips]
        assert states == [i % 2 == 0 for i in range(len(states))], (aid, flips)
        raises = [n for n, a in flips if a]
        assert all(b - a >= FLAP for a, b in zip(raises, raises[1:], strict=False)), (aid, raises)
    # while a rule's summary is active, none of its subjects is raised on its own
    active_summary: dict[str, bool] = {}
    for _, t in log:
        if t.subject == "summary":
            active_summary[t.rule] = t.active
        elif t.active:
            assert not active_summary.get(t.rule), t


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_transitions_alternate_and_respect_the_flap_interval(plan: list[Any]) -> None:
    _check(_run(plan))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.integers(0, 59))
def test_a_restart_neither_raises_again_nor_clears_twice(plan: list[Any], at: int) -> None:
    # the flap interval starts over at a restart (counted as raised then), so check alternation only
    log = _run(plan, restart_at=at)
    by_id: dict[str, list[bool]] = {}
    for _, t in log:
        by_id.setdefault(t.alarm_id, []).append(t.active)
    for aid, states in by_id.items():
        assert states == [i % 2 == 0 for i in range(len(states))], (aid, states)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_skipping_untouched_subjects_changes_nothing(plan: list[Any]) -> None:
    """The evaluator judges a subject of a rule whose verdict depends on its track alone only when the track
    changed (or a delay runs); judging every subject every time must give the very same transitions."""
    fast = [(n, t) for n, t in _run(plan)]
    saved = engine._timed
    engine._timed = lambda rule: True  # every rule judged on every call
    try:
        slow = [(n, t) for n, t in _run(plan)]
    finally:
        engine._timed = saved
    assert fast == slow
