"""Fan-out of readings, events and alarms from drivers to every consumer.

Drivers emit into the hub; the store writer, the rules engine, MQTT and the
latest-value table subscribe to it. A consumer that raises is logged and
counted, never allowed to stop the others or the emitting driver. Events
pass a rate gate (``zaas_edge.eventgate``): past a rate, one kind from one
source is counted and summarised instead of handed on one by one.

Stored and live readings: a driver that hears a value every second but
stores it less often (the TIC driver: one frame a second, stored on change
or interval) hands the readings it does not store as ``live``. They reach
every consumer but the store (the rules engine, MQTT, the latest values), in
the same batch as the stored ones, so a consumer sees each frame whole.
"""

from __future__ import annotations

__all__ = ["Hub", "ReadingSink", "NoticeSink", "STORE_SINK"]

import logging
from collections.abc import Callable, Sequence

from zaas_edge.eventgate import EventGate
from zaas_edge.model import Alarm, Event, Reading

ReadingSink = Callable[[Sequence[Reading]], None]
NoticeSink = Callable[[Event | Alarm], None]

log = logging.getLogger("zaas_edge.hub")

STORE_SINK = "store"  # the consumer that live readings skip (the daemon registers the writer under it)


class Hub:
    def __init__(self) -> None:
        self._reading_sinks: list[tuple[str, ReadingSink]] = []
        self._notice_sinks: list[tuple[str, NoticeSink]] = []
        self.latest: dict[str, Reading] = {}
        self.active_alarms: dict[str, Alarm] = {}
        self.sink_errors: dict[str, int] = {}
        self.readings_total = 0
        self.gate = EventGate()  # one noisy source cannot flood the consumers with one kind of event

    def on_readings(self, name: str, sink: ReadingSink) -> None:
        self._reading_sinks.append((name, sink))

    def on_notice(self, name: str, sink: NoticeSink) -> None:
        self._notice_sinks.append((name, sink))

    def off(self, sink: ReadingSink | NoticeSink) -> None:
        """Unsubscribe a sink (a service that stops must not leave a dead consumer behind)."""
        self._reading_sinks = [(n, f) for n, f in self._reading_sinks if f != sink]
        self._notice_sinks = [(n, f) for n, f in self._notice_sinks if f != sink]

    def readings(self, batch: Sequence[Reading], *, live: Sequence[Reading] = ()) -> None:
        """Hand ``batch`` to every consumer, and ``live`` to every consumer but the store."""
        if not batch and not live:
            return
        everything = [*batch, *live] if live else batch
        self.readings_total += len(everything)
        latest = self.latest
        for r in everything:
            latest[r.point] = r
        for name, sink in self._reading_sinks:
            part = batch if name == STORE_SINK else everything
            if not part:
                continue
            try:
                sink(part)
            except Exception:
                self._sink_failed(name)

    def notice(self, item: Event | Alarm, *, exclude: tuple[str, ...] = ()) -> None:
        """Hand an event or alarm transition to every consumer but those in ``exclude``.

        The store writer records what it raises itself and passes
        ``exclude=("store",)`` so nothing is stored twice.
        """
        if isinstance(item, Alarm):
            if item.active:
                self.active_alarms[item.alarm_id] = item
            else:
                self.active_alarms.pop(item.alarm_id, None)
            self._fan_out(item, exclude)
            return
        for event in self.gate.admit(item):
            self._fan_out(event, exclude if event is item else ())

    def flush_summaries(self, mono_ns: int) -> None:
        """Hand on the summaries of held-back events whose interval has passed (the daemon's tick)."""
        for event in self.gate.due(mono_ns):
            self._fan_out(event, ())

    def _fan_out(self, item: Event | Alarm, exclude: tuple[str, ...]) -> None:
        for name, sink in self._notice_sinks:
            if name in exclude:
                continue
            try:
                sink(item)
            except Exception:
                self._sink_failed(name)

    def _sink_failed(self, name: str) -> None:
        n = self.sink_errors.get(name, 0) + 1
        self.sink_errors[name] = n
        # Once per power of two: a consumer failing on every reading must not flood the journal.
        if n & (n - 1) == 0:
            log.exception("consumer %s failed (%d times so far)", name, n,
                          extra={"fields": {"consumer": name, "failures": n}})
