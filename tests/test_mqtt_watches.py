"""The table of watched topics, pure: MQTT filter matching (checked against paho's), filter
validation, and the guard that keeps a watch off the gateway's own command topics."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from zaas_edge.mqtt.topics import Topics
from zaas_edge.mqtt.watches import Watches, check_filter, check_topic, filters_overlap, topic_matches

OWN = Topics("site-a", "gw-1").command_filters
LEVELS = st.sampled_from(["a", "b", "", "$SYS", "shellies", "relay", "0"])
topics = st.lists(LEVELS, min_size=1, max_size=5).map("/".join)
filters = st.lists(st.sampled_from(["a", "b", "", "+", "$SYS", "shellies", "relay", "0"]), min_size=1,
                   max_size=5).flatmap(lambda lv: st.sampled_from([lv, lv + ["#"]])).map("/".join)


@settings(max_examples=500, deadline=None)
@given(f=filters, t=topics)
def test_matching_agrees_with_paho(f: str, t: str) -> None:
    assert topic_matches(f, t) == topic_matches_sub(f, t)


@settings(max_examples=500, deadline=None)
@given(a=filters, b=filters, t=topics)
def test_a_topic_matching_two_filters_means_they_overlap(a: str, b: str, t: str) -> None:
    # The guard's soundness: a filter that could reach a command topic is always caught.
    if topic_matches(a, t) and topic_matches(b, t):
        assert filters_overlap(a, b) and filters_overlap(b, a)


@pytest.mark.parametrize("a, b, overlap", [
    ("shellies/+/relay/0", "zaas/v1/+/+/cmd/+/set", False),
    ("#", "zaas/v1/x/y/cmd/+/set", True),
    ("zaas/#", "zaas/v1/x/y/cmd/+/set", True),
    ("zaas/v1/+/+/cmd/driver/set", "zaas/v1/x/y/cmd/+/set", True),
    ("zaas/v1/x/y/status", "zaas/v1/x/y/cmd/+/set", False),
    ("a/b", "a/b/#", True),
    ("a/b/c", "a/+", False),
])
def test_overlap_table(a: str, b: str, overlap: bool) -> None:
    assert filters_overlap(a, b) is overlap


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b#", "a+/b", "a\x00b"])
def test_invalid_filters_are_refused_with_the_reason(bad: str) -> None:
    with pytest.raises(ValueError, match="topic filter|empty"):
        check_filter(bad)


@pytest.mark.parametrize("bad", ["", "a/+/b", "a/#", "x\x00"])
def test_wildcards_are_not_publish_topics(bad: str) -> None:
    with pytest.raises(ValueError):
        check_topic(bad)


@pytest.mark.parametrize("reaching", ["#", "zaas/#", "+/v1/+/+/cmd/+/set", "zaas/v1/site-a/gw-1/cmd/+/+/set"])
def test_a_watch_never_reaches_the_gateways_commands(reaching: str) -> None:
    w = Watches(reserved=OWN)
    with pytest.raises(ValueError, match="own command topics"):
        w.add(reaching, lambda t, p: None)
    assert len(w) == 0 and w.filters() == set()


def test_subscribe_on_the_first_watch_unsubscribe_after_the_last() -> None:
    w = Watches(reserved=OWN)
    got: list[tuple[str, str, bytes]] = []
    h1, new1 = w.add("shellies/+/relay/0", lambda t, p: got.append(("one", t, p)))
    h2, new2 = w.add("shellies/+/relay/0", lambda t, p: got.append(("two", t, p)))
    h3, new3 = w.add("stat/pump/POWER", lambda t, p: got.append(("pump", t, p)))
    assert (new1, new2, new3) == (True, False, True)
    for cb in w.callbacks("shellies/boiler/relay/0"):
        cb("shellies/boiler/relay/0", b"on")
    assert got == [("one", "shellies/boiler/relay/0", b"on"), ("two", "shellies/boiler/relay/0", b"on")]
    assert w.callbacks("shellies/boiler/relay/0/command") == []
    assert w.remove(h1) is None  # the other watch still needs the subscription
    assert w.remove(h2) == "shellies/+/relay/0"
    assert w.remove(h2) is None  # twice is harmless
    assert w.filters() == {"stat/pump/POWER"} and w.remove(h3) == "stat/pump/POWER"
