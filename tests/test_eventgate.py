"""The event rate gate: a flood of one kind from one source becomes a counted summary."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from zaas_edge.eventgate import EventGate
from zaas_edge.hub import Hub
from zaas_edge.model import Alarm, Event, Severity, Stamp

S = 1_000_000_000


def ev(kind: str, t_s: float, source: str = "lora", severity: Severity = Severity.WARNING, n: int = 0) -> Event:
    return Event(kind, f"bad MIC #{n}", source, Stamp(1_700_000_000 * S + int(t_s * S), int(t_s * S), "b", True),
                 severity, {"n": n})


def test_a_burst_passes_then_the_rest_is_one_summary_with_the_count() -> None:
    gate = EventGate(rate=1.0, burst=5, summary_s=60)
    passed = [e for i in range(10_000) for e in gate.admit(ev("lora.security", i * 0.001, n=i))]
    assert len(passed) == 5 + 9  # the burst, then one a second over ten seconds
    assert gate.suppressed_total == 10_000 - 14

    summary = gate.due(61 * S)
    assert len(summary) == 1 and summary[0].kind == "lora.security"
    assert summary[0].data["suppressed"] == 10_000 - 14 and summary[0].data["last"] == {"n": 9999}
    assert gate.due(200 * S) == []


def test_other_kinds_and_sources_and_gap_records_are_not_held_back_by_one_flood() -> None:
    gate = EventGate(rate=1.0, burst=2, summary_s=60)
    for i in range(100):
        gate.admit(ev("mqtt.command_refused", 1 + i * 0.001, source="mqtt"))
    assert gate.admit(ev("mqtt.command_refused", 1.5, source="other")) != []
    assert gate.admit(ev("device.availability", 1.5, source="mqtt")) != []
    assert all(gate.admit(ev("store.gap", 1.5, source="store")) for _ in range(50))
    many = [Event("device.availability", "offline", "mbus", ev("x", 2).stamp, data={"device": f"m{i}"})
            for i in range(50)]
    assert all(gate.admit(e) for e in many)  # one fact per device, not a flood


def test_the_summary_carries_the_worst_severity_seen() -> None:
    gate = EventGate(rate=1.0, burst=1, summary_s=10)
    gate.admit(ev("k", 0))
    gate.admit(ev("k", 0.1, severity=Severity.INFO))
    gate.admit(ev("k", 0.2, severity=Severity.ERROR))
    [summary] = gate.due(11 * S)
    assert summary.severity is Severity.ERROR and summary.data["suppressed"] == 2


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["s1", "s2"]), st.floats(0, 0.5)),
                max_size=300))
def test_nothing_is_lost_each_event_passes_or_is_counted_in_a_summary(items) -> None:
    gate = EventGate(rate=2.0, burst=3, summary_s=5)
    t, passed, counted = 0.0, 0, 0
    for kind, source, dt in items:
        t += dt
        for e in gate.admit(ev(kind, t, source=source)):
            if "suppressed" in e.data:
                counted += e.data["suppressed"]
            else:
                passed += 1
    counted += sum(e.data["suppressed"] for e in gate.due(int((t + 10) * S)))
    assert passed + counted == len(items)


def test_the_hub_hands_on_the_burst_and_the_summary_and_alarms_always() -> None:
    hub = Hub()
    seen: list = []
    hub.on_notice("t", seen.append)
    for i in range(1000):
        hub.notice(ev("lora.security", i * 0.0001, n=i))
    hub.notice(Alarm("a", True, "x", "t", ev("x", 0.2).stamp))
    assert len([e for e in seen if isinstance(e, Event)]) == 20 and isinstance(seen[-1], Alarm)
    hub.flush_summaries(120 * S)
    assert seen[-1].data["suppressed"] == 980
