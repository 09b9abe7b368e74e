"""Clock fix-up of readings taken before synchronisation, with a fake clock that jumps."""

from __future__ import annotations

from zaas_edge.clock import FakeClock
from zaas_edge.model import Lane, Reading, Stamp
from zaas_edge.store import Stored
from zaas_edge.sync import clockfix
from zaas_edge.sync.aggregate import Aggregation
from zaas_edge.sync.clockfix import Decision
from zaas_edge.sync.policy import PolicySet

S = 1_000_000_000
TRUE_T0 = 1_700_000_000_000_000_000  # what the time really is at the start
BOOT_WALL = 1_600_000_000_000_000_000  # what the unsynchronised clock says (months behind)


def reading(clock: FakeClock, value: float = 1.0, point: str = "m/p") -> Reading:
    return Reading.at(clock.now(), point, value, "W")


def booted(boot: str = "boot-1") -> FakeClock:
    return FakeClock(wall_ns=BOOT_WALL, mono_ns=5 * S, boot_id=boot, synced=False)


def test_unsynced_readings_of_a_boot_are_corrected_once_a_synced_stamp_is_seen():
    clock = booted()
    early = []
    for _ in range(3):
        early.append(reading(clock))
        clock.advance(10)
    # NTP steps the clock to the true time and reports it synchronised.
    true_now = TRUE_T0 + 30 * S
    clock.jump_wall((true_now - clock.wall_ns) / 1e9)
    clock.is_synced = True
    after = reading(clock)
    offsets = clockfix.learn({}, [*early, after])
    assert offsets == {"boot-1": after.wall_ns - after.mono_ns}
    fixed = [clockfix.fix(r, offsets) for r in early]
    assert [f.wall_ns for f in fixed] == [TRUE_T0, TRUE_T0 + 10 * S, TRUE_T0 + 20 * S]
    assert all(f.synced and f.corrected and f.mono_ns is None for f in fixed)
    assert clockfix.fix(after, offsets) == clockfix.Fixed(true_now, True, False)


def test_readings_of_a_boot_never_synchronised_stay_unsynced_with_mono_and_boot():
    clock = booted("boot-old")
    old = reading(clock)
    offsets = clockfix.learn({}, [old])
    f = clockfix.fix(old, offsets)
    assert (f.wall_ns, f.synced, f.corrected, f.mono_ns, f.boot_id) == (BOOT_WALL, False, False, 5 * S, "boot-old")
    # The next boot synchronises: the old boot's offset is still unknown.
    new = FakeClock(wall_ns=TRUE_T0, mono_ns=S, boot_id="boot-new", synced=True)
    offsets = clockfix.learn(offsets, [reading(new)])
    assert clockfix.fix(old, offsets).synced is False


def test_resolve_waits_fixes_or_gives_up():
    clock = booted()
    first = reading(clock)
    clock.advance(5)
    later_unsynced = reading(clock)
    hold = 60 * S
    assert clockfix.resolve("boot-1", first.mono_ns, [later_unsynced], hold) == (Decision.WAIT, None)
    clock.jump_wall(3600)
    clock.is_synced = True
    synced = reading(clock)
    assert clockfix.resolve("boot-1", first.mono_ns, [later_unsynced, synced], hold) == (
        Decision.FIX, synced.wall_ns - synced.mono_ns)
    other = Reading.at(Stamp(TRUE_T0, S, "boot-2", False), "m/p", 1.0, "W")
    assert clockfix.resolve("boot-1", first.mono_ns, [other], hold) == (Decision.GIVE_UP, None)
    clock.is_synced = False
    clock.advance(120)
    assert clockfix.resolve("boot-1", first.mono_ns, [reading(clock)], hold) == (Decision.GIVE_UP, None)
    assert clockfix.resolve("boot-1", first.mono_ns, [], hold, now=clock.now()) == (Decision.GIVE_UP, None)


def test_the_aggregator_holds_unsynced_readings_then_sends_them_corrected():
    clock = booted()
    policies = PolicySet(default_policy="raw")
    agg = Aggregation(policies, grace_s=0, hold_s=900)
    rows, seq = [], 0
    for _ in range(3):
        seq += 1
        rows.append(Stored(Lane.READING, seq, reading(clock, float(seq))))
        clock.advance(1)
    records, taken = agg.feed(rows, clock.now())
    assert (records, taken) == ([], 0)
    assert agg.held == (1, "boot-1", 5 * S)
    assert agg.ack_seq() == 0  # nothing acknowledged while held
    # The clock jumps to the true time and is synchronised.
    clock.jump_wall((TRUE_T0 + 3 * S - clock.wall_ns) / 1e9)
    clock.is_synced = True
    seq += 1
    rows.append(Stored(Lane.READING, seq, reading(clock, 4.0)))
    records, taken = agg.feed(rows, clock.now())
    assert taken == 4
    assert [r.wall_ns for r in records] == [TRUE_T0, TRUE_T0 + S, TRUE_T0 + 2 * S, TRUE_T0 + 3 * S]
    assert [(r.synced, r.corrected) for r in records] == [(True, True)] * 3 + [(True, False)]
    assert agg.ack_seq() == 4


def test_the_aggregator_gives_up_after_the_hold_and_sends_unsynced():
    clock = booted()
    agg = Aggregation(PolicySet(default_policy="raw"), grace_s=0, hold_s=60)
    first = Stored(Lane.READING, 1, reading(clock, 1.0))
    assert agg.feed([first], clock.now()) == ([], 0)
    clock.advance(61)
    records, taken = agg.feed([first], clock.now())
    assert taken == 1
    r = records[0]
    assert (r.wall_ns, r.synced, r.corrected, r.mono_ns, r.boot_id) == (BOOT_WALL, False, False, 5 * S, "boot-1")


def test_unsynced_aggregates_of_an_ended_boot_close_and_keep_their_boot():
    clock = booted()
    agg = Aggregation(PolicySet(), grace_s=0, hold_s=0)
    rows = []
    for i in range(3):
        rows.append(Stored(Lane.READING, i + 1, reading(clock, float(i))))
        clock.advance(1)
    records, taken = agg.feed(rows, clock.now())
    assert taken == 3 and records == []
    new = FakeClock(wall_ns=TRUE_T0, mono_ns=S, boot_id="boot-2", synced=True)
    out = agg.close(new.now())
    assert len(out) == 1
    r = out[0]
    assert (r.kind, r.count, r.synced, r.boot_id, r.mono_ns, r.value) == ("agg", 3, False, "boot-1", 5 * S, 1.0)
