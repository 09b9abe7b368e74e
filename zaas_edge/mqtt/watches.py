"""Other devices' topics the gateway's services watch on the building's broker, pure.

Load shedding reads a smart relay's state back from the relay's own topic
(``shellies/boiler/relay/0``, ``stat/pump/POWER``). The MQTT service keeps
one ``Watches`` table: it subscribes to every filter in it at each
(re)connection, and hands each received message to the callbacks whose
filter matches. Nothing here does I/O; the service decides when to
subscribe from what ``add`` and ``remove`` return.

A watch may never reach the gateway's own command topics: a filter that
could match one is refused, so a command is never also dispatched to a
watcher, and an overlapping subscription can never make the broker deliver
one command twice.
"""

from __future__ import annotations

__all__ = ["Watches", "WatchCallback", "topic_matches", "check_filter", "check_topic", "filters_overlap"]

from collections.abc import Callable
from dataclasses import dataclass, field

WatchCallback = Callable[[str, bytes], None]
MAX_TOPIC_BYTES = 65535  # the MQTT length prefix


def check_topic(topic: str) -> None:
    """Raise ``ValueError`` unless ``topic`` is a topic one may publish to."""
    _check_common(topic, "topic")
    if "+" in topic or "#" in topic:
        raise ValueError(f"topic {topic!r}: wildcards (+, #) are for subscriptions, not for publishing")


def check_filter(topic_filter: str) -> None:
    """Raise ``ValueError`` unless ``topic_filter`` is a valid MQTT subscription filter."""
    _check_common(topic_filter, "topic filter")
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"topic filter {topic_filter!r}: '#' must be a whole level, and the last")
        if "+" in level and level != "+":
            raise ValueError(f"topic filter {topic_filter!r}: '+' must be a whole level")


def _check_common(text: str, what: str) -> None:
    if not text:
        raise ValueError(f"{what} is empty")
    if "\x00" in text:
        raise ValueError(f"{what} {text!r} contains NUL")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        raise ValueError(f"{what} is over {MAX_TOPIC_BYTES} bytes")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` by the MQTT rules (a ``$`` topic only by name)."""
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    if topic.startswith("$") and f_levels[0] in ("+", "#"):
        return False
    for i, f in enumerate(f_levels):
        if f == "#":
            return True  # "a/#" matches "a" too
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


def filters_overlap(a: str, b: str) -> bool:
    """Whether some topic matches both filters."""
    la, lb = a.split("/"), b.split("/")
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else None
        y = lb[i] if i < len(lb) else None
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if x != y and "+" not in (x, y):
            return False
    return True


@dataclass
class _Watch:
    topic_filter: str
    callback: WatchCallback


@dataclass
class Watches:
    """The table of watched filters. ``reserved``: filters of the gateway's own topics that no
    watch may overlap (its command topics)."""

    reserved: tuple[str, ...] = ()
    _watches: dict[int, _Watch] = field(default_factory=dict)
    _next: int = 0

    def add(self, topic_filter: str, callback: WatchCallback) -> tuple[int, bool]:
        """Register a watch: its handle, and whether its filter is new (to subscribe to).
        Raises ``ValueError`` for an invalid filter or one reaching the gateway's own commands."""
        check_filter(topic_filter)
        for own in self.reserved:
            if filters_overlap(topic_filter, own):
                raise ValueError(f"topic filter {topic_filter!r} would also match the gateway's own command "
                                 f"topics ({own}); watch the other device's topics only")
        new = topic_filter not in self.filters()
        self._next += 1
        self._watches[self._next] = _Watch(topic_filter, callback)
        return self._next, new

    def remove(self, handle: int) -> str | None:
        """Forget a watch (again is harmless); the filter to unsubscribe from when no other
        watch still uses it, else None."""
        w = self._watches.pop(handle, None)
        if w is None or w.topic_filter in self.filters():
            return None
        return w.topic_filter

    def filters(self) -> set[str]:
        return {w.topic_filter for w in self._watches.values()}

    def callbacks(self, topic: str) -> list[WatchCallback]:
        """The callbacks of every watch whose filter matches ``topic``, in the order they were added."""
        return [w.callback for w in self._watches.values() if topic_matches(w.topic_filter, topic)]

    def __len__(self) -> int:
        return len(self._watches)
