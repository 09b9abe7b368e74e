"""A flood of bad commands against the real MQTT service on a real mosquitto, with the daemon's
hub (its event gate), its journal consumer and a real store behind it: what the flood costs is
bounded, whatever its size."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from pathlib import Path

import pytest

import tests.mosquitto as broker_helpers
from tests.mosquitto import Collector, Mosquitto
from tests.test_mqtt_service import BASE, Harness, cmd
from zaas_edge.config_model import StoreSection
from zaas_edge.logsetup import log_notice
from zaas_edge.model import Lane
from zaas_edge.store import Store, Writer

mosquitto = broker_helpers.mosquitto  # the fixture

FLOOD = 100_000


def _publish_packet(topic: str, payload: bytes) -> bytes:
    """An MQTT PUBLISH at QoS 0, encoded by hand: a flood is bytes written as fast as the socket takes them."""
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + payload
    n, length = len(body), bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        length.append(digit | (0x80 if n else 0))
        if not n:
            break
    return b"\x30" + bytes(length) + body


def _flood(broker: Mosquitto, count: int) -> None:
    """``count`` garbage commands for made-up targets, from a client of the broker's (MQTT 3.1.1)."""
    client_id = b"flooder"
    connect = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
    with socket.create_connection((broker.host, broker.port)) as s:
        s.sendall(bytes([0x10, len(connect)]) + connect)
        assert s.recv(4)[:1] == b"\x20"  # CONNACK
        burst = b"".join(_publish_packet(f"{BASE}/cmd/driver/fake-{i % 5000}/set", b"{not json")
                         for i in range(count))
        s.sendall(burst)
        s.sendall(b"\xe0\x00")  # DISCONNECT: the broker forwards what it read before closing


async def _until_answered(h: Harness, sub: Collector, attempts: int = 120) -> dict:
    """Publish a good command until one is answered: the flood before it has been read by then."""
    state_t = f"{BASE}/cmd/driver/meter/state"
    for k in range(attempts):
        await sub.publish(f"{BASE}/cmd/driver/meter/set", cmd(req_id=f"after-{k}"))
        try:
            raw = await sub.wait_for(state_t, lambda p: json.loads(p)["req_id"].startswith("after-"), timeout=1.0)
        except AssertionError:
            continue
        return json.loads(raw)
    raise AssertionError(f"no command answered after the flood; status {h.ctx.status}")


async def test_a_flood_of_invalid_commands_costs_bounded_events_log_lines_and_rows(
        tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(tmp_path, mosquitto)
    h.ctx.notice = h.hub.notice  # as in the daemon: through the hub and its event gate
    writer = Writer(StoreSection(flush_interval_ms=50), tmp_path / "store.sqlite", h.clock)
    await writer.start()
    h.hub.on_notice("store", lambda item: writer.event(item))  # type: ignore[arg-type, return-value]
    h.hub.on_notice("log", log_notice)
    refusals: list[object] = []
    h.hub.on_notice("count", refusals.append)
    await h.start()
    try:
        with caplog.at_level(logging.INFO):
            caplog.clear()
            async with Collector(mosquitto, f"{BASE}/cmd/+/+/state") as sub:
                await asyncio.to_thread(_flood, mosquitto, FLOOD)
                ack = await _until_answered(h, sub)
                assert ack["accepted"] is True
            lines = [r for r in caplog.records if r.name.startswith("zaas_edge")]
        commands = h.ctx.status["commands"]
        refused = sum(commands["refused"].values())
        dropped = commands["dropped_at_intake"] + commands["dropped_queue_full"]
        print(f"refused {refused}, dropped {commands}, lines {len(lines)}, events {len(refusals)}")
        assert refused + dropped > FLOOD // 2  # the flood did reach the gateway
        # Bounds a thousand times below the flood: past the intake budget nothing is parsed, and
        # what is refused goes through the event gate before the journal and the store.
        assert refused <= 1000
        events = [e for e in refusals if getattr(e, "kind", "") == "mqtt.command_refused"]
        assert len(events) <= 100, len(events)
        assert len(lines) <= 100, [r.getMessage() for r in lines[:40]]
        assert await writer.flush()
        with Store(tmp_path / "store.sqlite", readonly=True) as store:
            rows = store.read(Lane.EVENT, 0, 10**9)
        assert len(rows) <= 100
        # Refusals for made-up targets left nothing retained on the broker.
        async with Collector(mosquitto, f"{BASE}/cmd/driver/+/state") as late:
            ack = json.loads(await late.wait_for(f"{BASE}/cmd/driver/meter/state"))
            assert ack["accepted"] is True  # the configured target's state is retained
            assert all(t == f"{BASE}/cmd/driver/meter/state" for t, _, _ in late.messages)
    finally:
        await h.stop()
        await writer.close()
