"""The real daemon with [mqtt] enabled, against a real mosquitto: the system
driver's state and discovery reach a subscriber, a poll command is obeyed."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

import pytest

from hil.daemon_harness import DaemonProcess, write_config
from tests.mosquitto import Collector, Mosquitto

BASE = "zaas/v1/test-site/gw-test"


@pytest.fixture
def base() -> Path:
    with tempfile.TemporaryDirectory(prefix="zaas-mq-", dir="/tmp") as d:
        yield Path(d)


async def test_daemon_publishes_system_state_discovery_and_obeys_poll(base: Path) -> None:
    with Mosquitto(base / "broker") as broker:
        extra = f"[mqtt]\nenabled = true\nhost = \"127.0.0.1\"\nport = {broker.port}\nreconnect_max_s = 2.0\n"
        cfg = write_config(base / "config.toml", base, extra=extra)
        async with Collector(broker, "zaas/#", "homeassistant/#") as sub:
            d = DaemonProcess(cfg)
            try:
                await asyncio.to_thread(d.wait_notify, "READY=1")
                assert await sub.wait_for(f"{BASE}/status", lambda p: p == b"online") == b"online"
                state = json.loads(await sub.wait_for(f"{BASE}/device/system/state"))
                assert "uptime" in state["points"] and state["q"] == "ok"
                assert abs(state["ts"] - time.time()) < 30
                disco = json.loads(await sub.wait_for("homeassistant/device/zaas_test-site_gw-test_system/config"))
                assert disco["dev"]["mdl"] == "system"
                assert disco["cmps"]["process_rss"]["device_class"] == "data_size"
                # Only what the box reports is announced: no SoC temperature, no entity waiting for one.
                assert set(disco["cmps"]) <= {k.replace(".", "_") for k in state["points"]}
                if "cpu_temp" in state["points"]:
                    assert disco["cmps"]["cpu_temp"]["unit_of_measurement"] == "°C"
                assert disco["cmps"]["uptime"]["entity_category"] == "diagnostic"
                assert disco["dev"]["via_device"] == "zaas_test-site_gw-test"
                assert await sub.wait_for(f"{BASE}/device/system/availability",
                                          lambda p: p == b"online") == b"online"

                states_before = len([m for m in sub.messages if m[0] == f"{BASE}/device/system/state"])
                await sub.publish(f"{BASE}/cmd/driver/system/set", json.dumps(
                    {"req_id": "poll-1", "ts": time.time(), "ttl_s": 30, "action": "poll"}))
                ack = json.loads(await sub.wait_for(f"{BASE}/cmd/driver/system/state"))
                assert ack == {"req_id": "poll-1", "accepted": True, "code": "ok", "reason": "poll done",
                               "state": {"enabled": True, "state": "running"}}
                await sub.publish(f"{BASE}/cmd/driver/nosuch/set", json.dumps(
                    {"req_id": "x-1", "ts": time.time(), "ttl_s": 30, "action": "poll"}))
                ack = json.loads(await sub.wait_for(f"{BASE}/cmd/driver/nosuch/state"))
                assert (ack["accepted"], ack["code"]) == (False, "unknown_target")

                st = await asyncio.to_thread(d.wait_status, lambda s: (s.get("mqtt") or {}).get("connected"))
                mqtt = st["mqtt"]
                assert mqtt["broker"] == f"mqtt://127.0.0.1:{broker.port}"
                assert mqtt["published"] > 0 and mqtt["commands"]["accepted"] == 1
                assert mqtt["commands"]["refused"] == {"unknown_target": 1}
                assert len([m for m in sub.messages if m[0] == f"{BASE}/device/system/state"]) >= states_before

                assert await asyncio.to_thread(d.stop) == 0
                # A clean stop says offline at once (the will covers the unclean ones).
                await sub.wait_for(f"{BASE}/status", lambda p: p == b"offline")
            finally:
                await asyncio.to_thread(d.close)
