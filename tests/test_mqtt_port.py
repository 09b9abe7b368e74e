"""The MQTT service as the daemon's MessagePort, against a real mosquitto: load shedding
publishes to smart relays and reads their state back from the relays' own topics."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import tests.mosquitto as broker_helpers
from tests.mosquitto import Collector, Mosquitto
from tests.test_mqtt_service import BASE, Harness, cmd
from zaas_edge.errors import PermanentError, TransientError
from zaas_edge.service import MessagePort

mosquitto = broker_helpers.mosquitto  # the fixture

STATE = "shellies/boiler/relay/0"


class Seen:
    """A watcher's callback that records what it is handed and lets a test await a message."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.got: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, payload: bytes) -> None:
        self.got.append((topic, payload))

    async def until(self, topic: str, payload: bytes) -> None:
        await self.h.until(lambda: (topic, payload) in self.got)


async def test_the_service_is_a_message_port_and_publishes_to_other_devices(tmp_path: Path,
                                                                             mosquitto: Mosquitto) -> None:
    h = Harness(tmp_path, mosquitto)
    assert isinstance(h.service, MessagePort) and not h.service.connected
    with pytest.raises(TransientError, match="not connected"):
        await h.service.publish(f"{STATE}/command", b"off")
    await h.start()
    try:
        assert h.service.connected
        async with Collector(mosquitto, "shellies/#") as relay:
            await h.service.publish(f"{STATE}/command", b"off")
            assert await relay.wait_for(f"{STATE}/command") == b"off"
            await h.service.publish(STATE, b"on", retain=True)
        async with Collector(mosquitto, STATE) as late:  # retained: a late subscriber sees it
            assert await late.wait_for(STATE) == b"on"
        with pytest.raises(PermanentError, match="wildcards"):
            await h.service.publish("shellies/+/relay/0/command", b"on")
        with pytest.raises(PermanentError, match="own command topics"):
            await h.service.publish(f"{BASE}/cmd/driver/meter/set", cmd())
    finally:
        await h.stop()
    assert not h.service.connected


async def test_a_watch_gets_a_relays_state_and_survives_a_broker_restart(tmp_path: Path,
                                                                          mosquitto: Mosquitto) -> None:
    h = Harness(tmp_path, mosquitto)
    seen = Seen(h)
    h.service.watch("shellies/+/relay/0", seen)  # before the service runs: subscribed at connection
    await h.start()
    try:
        async with Collector(mosquitto) as relay:
            await relay.publish(STATE, b"on", retain=True)
            await seen.until(STATE, b"on")
            await relay.publish(STATE, b"off")
            await seen.until(STATE, b"off")
            await relay.publish(f"{STATE}/command", b"on")  # not matched by the filter
        mosquitto.restart()  # persistence off: the broker forgot every subscription
        await h.until(lambda: h.ctx.status["reconnects"] >= 1 and h.ctx.status["connected"])
        async with Collector(mosquitto) as relay:
            await relay.publish("shellies/pump/relay/0", b"on", retain=True)
            await seen.until("shellies/pump/relay/0", b"on")
        assert all(t != f"{STATE}/command" for t, _ in seen.got)
        assert h.ctx.status["watched"] == len(seen.got)
    finally:
        await h.stop()


async def test_a_watch_added_while_connected_and_unwatched(tmp_path: Path, mosquitto: Mosquitto) -> None:
    h = Harness(tmp_path, mosquitto)
    await h.start()
    try:
        first, second = Seen(h), Seen(h)
        unwatch_first = h.service.watch("stat/+/POWER", first)
        h.service.watch("stat/+/POWER", second)
        async with Collector(mosquitto) as relay:
            await relay.publish("stat/pump/POWER", b"ON", retain=True)
            await first.until("stat/pump/POWER", b"ON")
            await second.until("stat/pump/POWER", b"ON")
            unwatch_first()
            unwatch_first()  # twice is harmless
            await relay.publish("stat/pump/POWER", b"OFF")
            await second.until("stat/pump/POWER", b"OFF")
        assert ("stat/pump/POWER", b"OFF") not in first.got
    finally:
        await h.stop()


async def test_a_failing_watcher_is_counted_logged_sparingly_and_stops_nothing(
        tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(tmp_path, mosquitto)
    await h.start()

    def broken(topic: str, payload: bytes) -> None:
        raise RuntimeError("relay parser bug")

    healthy = Seen(h)
    h.service.watch("shellies/+/relay/0", broken)
    h.service.watch("shellies/+/relay/0", healthy)
    try:
        with caplog.at_level(logging.WARNING, logger=h.ctx.log.name):
            async with Collector(mosquitto, f"{BASE}/cmd/#") as relay:
                await relay.publish(STATE, b"0", retain=True)
                await healthy.until(STATE, b"0")
                for i in range(1, 50):
                    await relay.publish(STATE, str(i).encode())
                await healthy.until(STATE, b"49")
                # The intake still serves the gateway's own commands.
                await relay.publish(f"{BASE}/cmd/driver/meter/set", cmd(req_id="after"))
                await relay.wait_for(f"{BASE}/cmd/driver/meter/state", lambda p: b'"after"' in p)
        assert h.ctx.status["watch_errors"] == 50 and h.drivers.polled == ["meter"]
        failures = [r for r in caplog.records if "watcher" in r.getMessage()]
        assert len(failures) == 6  # 1, 2, 4, 8, 16, 32
        with pytest.raises(ValueError, match="own command topics"):
            h.service.watch("#", healthy)
    finally:
        await h.stop()
