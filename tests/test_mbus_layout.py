"""The M-Bus layout guard: garbage that passes the checksum never becomes a point."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from zaas_edge.drivers.mbus.layout import CONFIRM, LayoutGuard, Verdict

KNOWN = {"volume": "m3", "volume_flow": "m3/h", "datetime": ""}

layouts = st.dictionaries(st.sampled_from(["volume", "volume_flow", "energy", "power", "x.s1", "y.t2"]),
                          st.sampled_from(["m3", "m3/h", "Wh", "W", ""]), min_size=1, max_size=5)


def test_first_readout_is_learned_and_a_subset_is_fine() -> None:
    known: dict[str, str] = {}
    guard = LayoutGuard(known)
    assert guard.check(KNOWN) is Verdict.LEARNED and known == KNOWN
    assert guard.check({"volume": "m3"}) is Verdict.OK
    assert guard.check({"volume": "l"}) is Verdict.REFUSED  # a unit change is a layout change


def test_a_new_layout_is_adopted_after_confirm_readouts_in_a_row_only() -> None:
    guard = LayoutGuard(dict(KNOWN))
    new = {**KNOWN, "energy": "Wh"}
    for _ in range(CONFIRM - 1):
        assert guard.check(new) is Verdict.REFUSED
    assert guard.check(KNOWN) is Verdict.OK  # the old layout again: the count starts over
    for _ in range(CONFIRM - 1):
        assert guard.check(new) is Verdict.REFUSED
    assert guard.check(new) is Verdict.CHANGED and guard.known == new


def test_a_replaced_meter_is_learned_at_once() -> None:
    guard = LayoutGuard(dict(KNOWN))
    assert guard.check({"energy": "Wh"}, replaced=True) is Verdict.LEARNED and guard.known == {"energy": "Wh"}


@given(st.lists(layouts, min_size=1, max_size=30))
def test_layouts_that_never_repeat_in_a_row_are_never_adopted(seq: list[dict[str, str]]) -> None:
    """Line garbage differs from one readout to the next: none of it is ever believed."""
    guard = LayoutGuard(dict(KNOWN))
    previous = None
    for layout in seq:
        if layout == previous:
            continue
        previous = layout
        verdict = guard.check(layout)
        assert verdict in (Verdict.OK, Verdict.REFUSED)
        assert guard.known == KNOWN
