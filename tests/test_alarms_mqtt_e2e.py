"""The real daemon with alarm rules and [mqtt] against a real mosquitto: a rule's alarm is retained on
``alarm/<id>``, its raise on the event topic carries the incident, and Home Assistant is told of it as a
``binary_sensor`` of class ``problem`` on its meter's device."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.daemon_harness import DaemonProcess, write_config
from tests.mosquitto import Collector, Mosquitto
from zaas_edge.model import Alarm, Stamp
from zaas_edge.mqtt.discovery import alarm_config
from zaas_edge.mqtt.topics import Topics

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
                obj = "zaas_test-site_gw-test_alarm_rule.up.system.uptime"
                ha = json.loads(await sub.wait_for(f"homeassistant/binary_sensor/{obj}/config"))
                assert ha["device_class"] == "problem" and ha["state_topic"] == f"{BASE}/alarm/{AID}"
                assert ha["unique_id"] == obj and ha["dev"] == {"ids": ["zaas_test-site_gw-test_system"]}
                assert ha["value_template"] == "{{ 'ON' if value_json.active else 'OFF' }}"
            finally:
                await asyncio.to_thread(d.close)


def test_a_leak_is_a_moisture_sensor_on_its_detectors_device_anything_else_a_problem() -> None:
    topics = Topics("bldg-a", "gw-1")
    stamp = Stamp(0, 0, "b", True)
    leak = Alarm("rule.leak.lora-9.leak", True, "leak", "alarms", stamp,
                 data={"rule": "leak", "kind": "leak", "subject": "lora-9/leak", "device": "lora-9"})
    topic, doc = alarm_config(topics, leak)
    assert topic == "homeassistant/binary_sensor/zaas_bldg-a_gw-1_alarm_rule.leak.lora-9.leak/config"
    assert doc["device_class"] == "moisture" and doc["dev"] == {"ids": ["zaas_bldg-a_gw-1_lora-9"]}
    assert doc["name"] == "Alarm leak lora-9/leak" and doc["availability_topic"] == "zaas/v1/bldg-a/gw-1/status"
    summary = Alarm("rule.bus.summary", True, "20 at once", "alarms", stamp,
                    data={"rule": "bus", "kind": "stale", "subject": "summary", "device": None})
    _, doc = alarm_config(topics, summary)
    assert doc["device_class"] == "problem" and doc["dev"] == {"ids": ["zaas_bldg-a_gw-1_system"]}
