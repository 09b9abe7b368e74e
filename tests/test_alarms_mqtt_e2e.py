"""The real daemon with alarm rules and [mqtt] against a real mosquitto: a rule's alarm is retained on
``alarm/<id>``, and its raise on the event topic carries the incident."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.daemon_harness import DaemonProcess, write_config
from tests.mosquitto import Collector, Mosquitto

BASE = "zaas/v1/test-site/gw-test"
AID = "rule.up.system.uptime"


@pytest.fixture
def base() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="zaas-almq-", dir="/tmp") as d:
        yield Path(d)


async def test_a_rules_alarm_reaches_the_broker_retained_with_its_incident(base: Path) -> None:
    with Mosquitto(base / "broker") as broker:
        extra = f"""
[mqtt]
enabled = true
host = "127.0.0.1"
port = {broker.port}
reconnect_max_s = 2.0

[alarms]
enabled = true

[[alarms.rules]]
id = "up"
kind = "threshold"
points = ["system/uptime"]
above = 0
severity = "notice"
action = "Nothing to do: the test's own alarm"
"""
        cfg = write_config(base / "config.toml", base, extra=extra)
        async with Collector(broker, "zaas/#", "homeassistant/#") as sub:
            d = DaemonProcess(cfg)
            try:
                await asyncio.to_thread(d.wait_notify, "READY=1")
                doc = json.loads(await sub.wait_for(f"{BASE}/alarm/{AID}"))
                assert doc["active"] is True and doc["severity"] == "notice" and "above 0" in doc["text"]
                ev = json.loads(await sub.wait_for(f"{BASE}/event", lambda p: AID.encode() in p))
                assert ev["kind"] == "alarm.raised" and ev["data"]["action"].startswith("Nothing to do")
                assert ev["data"]["site"] == "test-site" and ev["data"]["point"] == "system/uptime"
            finally:
                await asyncio.to_thread(d.close)
