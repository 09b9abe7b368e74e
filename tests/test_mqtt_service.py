"""The MQTT service against a real mosquitto: birth and will, retained state,
discovery, commands, a broker restart, authentication and ACLs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

import tests.mosquitto as broker_helpers
from tests.mosquitto import Collector, Mosquitto
from zaas_edge.clock import SystemClock
from zaas_edge.config_model import Config, GatewaySection
from zaas_edge.errors import PermanentError
from zaas_edge.health import DEVICE_AVAILABILITY
from zaas_edge.hub import Hub
from zaas_edge.model import Alarm, Event, Point, Reading, Severity
from zaas_edge.mqtt.config import MqttSection
from zaas_edge.mqtt.service import MqttService
from zaas_edge.service import DriverInfo, ServiceContext

mosquitto = broker_helpers.mosquitto  # the fixture

BASE = "zaas/v1/site-a/gw-1"
DISCO = "homeassistant/device/zaas_site-a_gw-1_meter-1/config"


class FakeDrivers:
    """DriverControl with one meter driver declaring two points."""

    def __init__(self) -> None:
        pts = (Point("meter-1", "power", "W", 1, "Active power"), Point("meter-1", "energy", "kWh", 0.01))
        self.info = {"meter": DriverInfo("meter", "modbus", True, "running", pts)}
        self.polled: list[str] = []

    def drivers_info(self) -> dict[str, DriverInfo]:
        return dict(self.info)

    async def poll_now(self, driver_id: str) -> None:
        self.polled.append(driver_id)

    async def set_enabled(self, driver_id: str, enabled: bool) -> None:
        i = self.info[driver_id]
        self.info[driver_id] = DriverInfo(i.id, i.type, enabled, "running" if enabled else "stopped", i.points)

    async def write(self, point: str, value: float) -> float:
        raise PermanentError("no writable points")


class Harness:
    def __init__(self, tmp_path: Path, broker: Mosquitto, **mqtt: Any) -> None:
        settings = dict(enabled=True, host=broker.host, port=broker.port, reconnect_initial_s=0.05,
                        reconnect_max_s=0.5, discovery_settle_s=0, coalesce_ms=20)
        settings.update(mqtt)
        self.config = Config(gateway=GatewaySection(id="gw-1", site="site-a", state_dir=tmp_path,
                                                    runtime_dir=tmp_path), mqtt=MqttSection(**settings))
        self.hub = Hub()
        self.clock = SystemClock(assume_synced=True)
        self.drivers = FakeDrivers()
        self.notices: list[Any] = []
        self.ctx = ServiceContext(
            name="mqtt", config=lambda: self.config, hub=self.hub, clock=self.clock, outbox=None,
            drivers=self.drivers, notice=self.notices.append, heartbeat=lambda: None,
            add_command=lambda name, handler: None,
        )
        self.service = MqttService(self.ctx)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.service.run())
        await self.until(lambda: self.ctx.status.get("connected"))

    async def until(self, predicate, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.task is not None and self.task.done():
                self.task.result()
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met; status {self.ctx.status}")
            await asyncio.sleep(0.02)

    def emit(self, power: float, energy: float = 12.5) -> None:
        st = self.clock.now()
        self.hub.readings([Reading.at(st, "meter-1/power", power, "W"),
                           Reading.at(st, "meter-1/energy", energy, "kWh")])

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@pytest.fixture
async def harness(tmp_path: Path, mosquitto: Mosquitto):
    h = Harness(tmp_path, mosquitto)
    await h.start()
    yield h
    await h.stop()


def cmd(action: str = "poll", req_id: str = "r1", ttl_s: float = 30, ts: float | None = None, **extra) -> bytes:
    return json.dumps({"req_id": req_id, "ts": time.time() if ts is None else ts, "ttl_s": ttl_s,
                       "action": action, **extra}).encode()


async def test_birth_retained_state_and_discovery_for_a_late_subscriber(harness: Harness, mosquitto) -> None:
    harness.emit(1500.0)
    await harness.until(lambda: harness.ctx.status["published"] >= 5)
    await harness.until(lambda: harness.service.publisher.offered >= 1)
    # Subscribed only now: everything below is retained.
    async with Collector(mosquitto, "zaas/#", "homeassistant/#") as sub:
        assert await sub.wait_for(f"{BASE}/status") == b"online"
        state = json.loads(await sub.wait_for(f"{BASE}/device/meter-1/state"))
        assert state["points"] == {"power": 1500, "energy": 12.5}
        assert state["q"] == "ok" and abs(state["ts"] - time.time()) < 60
        assert await sub.wait_for(f"{BASE}/device/meter-1/availability") == b"online"
        disco = json.loads(await sub.wait_for(DISCO))
        assert disco["dev"]["ids"] == ["zaas_site-a_gw-1_meter-1"] and disco["dev"]["mdl"] == "modbus"
        assert disco["o"]["name"] == "zaas-edge"
        assert disco["state_topic"] == f"{BASE}/device/meter-1/state"
        power = disco["cmps"]["power"]
        assert (power["device_class"], power["state_class"], power["unit_of_measurement"]) == \
            ("power", "measurement", "W")
        assert power["name"] == "Power" and power["default_entity_id"] == "sensor.zaas_site-a_gw-1_meter-1_power"
        assert "object_id" not in power and disco["dev"]["name"] == "site-a meter-1"
        assert disco["dev"]["via_device"] == "zaas_site-a_gw-1"
        assert power["value_template"] == "{{ value_json['points']['power'] }}"
        assert disco["cmps"]["energy"]["state_class"] == "total_increasing"
        assert [a["topic"] for a in disco["availability"]] == [f"{BASE}/status",
                                                                f"{BASE}/device/meter-1/availability"]
        assert all(sub_retained for _, _, sub_retained in sub.messages)

        # A change beyond the deadband is published live; one within it is not.
        harness.emit(1500.1)
        harness.emit(2000.0)
        live = json.loads(await sub.wait_for(f"{BASE}/device/meter-1/state",
                                             lambda p: json.loads(p)["points"]["power"] != 1500))
        assert live["points"]["power"] == 2000


async def test_last_will_and_clean_stop(tmp_path: Path, mosquitto) -> None:
    h = Harness(tmp_path, mosquitto)
    await h.start()
    try:
        async with Collector(mosquitto, f"{BASE}/status") as sub:
            await sub.wait_for(f"{BASE}/status", lambda p: p == b"online")
            # The connection dies without DISCONNECT, as in a crash: the broker sends the will.
            h.service._conn.abort()
            await sub.wait_for(f"{BASE}/status", lambda p: p == b"offline")
            statuses = [p for t, p, _ in sub.messages if t == f"{BASE}/status"]
            assert statuses[:2] == [b"online", b"offline"]
            # Then the service reconnects by itself and says so.
            await h.until(lambda: h.ctx.status["reconnects"] == 1 and h.ctx.status["connected"])
            await sub.wait_for(f"{BASE}/status", lambda p: p == b"online" and len(
                [m for m in sub.messages if m[0] == f"{BASE}/status"]) >= 3)
    finally:
        await h.stop()
    # Stopped: the retained status is offline for whoever comes next.
    async with Collector(mosquitto, f"{BASE}/status") as late:
        assert await late.wait_for(f"{BASE}/status") == b"offline"


async def test_killed_process_leaves_offline_retained(tmp_path: Path, mosquitto) -> None:
    """The will itself, from a process that dies with SIGKILL (no code of ours runs)."""
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(f"""
import asyncio, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from tests.test_mqtt_service import Harness
from tests.mosquitto import Mosquitto
class B: host = {mosquitto.host!r}; port = {mosquitto.port}
async def main():
    h = Harness(__import__('pathlib').Path({str(tmp_path)!r}), B())
    await h.start()
    print('connected', flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
""")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"connected"
        async with Collector(mosquitto, f"{BASE}/status") as sub:
            await sub.wait_for(f"{BASE}/status", lambda p: p == b"online")
            proc.kill()
            await sub.wait_for(f"{BASE}/status", lambda p: p == b"offline")
    finally:
        proc.kill()
        proc.wait()
    async with Collector(mosquitto, f"{BASE}/status") as late:
        assert await late.wait_for(f"{BASE}/status") == b"offline"


async def test_discovery_resent_on_home_assistant_birth(harness: Harness, mosquitto) -> None:
    harness.emit(100.0)
    async with Collector(mosquitto, "homeassistant/device/#") as sub:
        await sub.wait_for(DISCO)
        before = len([m for m in sub.messages if m[0] == DISCO])
        await sub.publish("homeassistant/status", "online")
        await sub.wait_for(DISCO, lambda p: len([m for m in sub.messages if m[0] == DISCO]) > before)
        again = [p for t, p, _ in sub.messages if t == DISCO]
        assert json.loads(again[-1]) == json.loads(again[0])


async def test_discovery_of_a_departed_device_is_removed(tmp_path: Path, mosquitto) -> None:
    # A configuration left behind by a device that is no longer configured, and one of another gateway.
    async with Collector(mosquitto, "homeassistant/device/#") as sub:
        await sub.publish("homeassistant/device/zaas_site-a_gw-1_old-meter/config", '{"dev":{}}', retain=True)
        await sub.publish("homeassistant/device/zaas_site-a_gw-2_meter/config", '{"dev":{}}', retain=True)
        h = Harness(tmp_path, mosquitto)
        await h.start()
        try:
            h.emit(100.0)
            await sub.wait_for("homeassistant/device/zaas_site-a_gw-1_old-meter/config", lambda p: p == b"")
            await h.until(lambda: h.ctx.status["discovery_removed"] == 1)
            await sub.wait_for(DISCO)
        finally:
            await h.stop()
        others = [p for t, p, _ in sub.messages if t == "homeassistant/device/zaas_site-a_gw-2_meter/config"]
        assert others == [b'{"dev":{}}'], "another gateway's devices are never touched"


async def test_commands_validated_acknowledged_and_counted(harness: Harness, mosquitto) -> None:
    set_t, state_t = f"{BASE}/cmd/driver/meter/set", f"{BASE}/cmd/driver/meter/state"

    def acked(req_id):
        return lambda p: json.loads(p).get("req_id") == req_id

    async with Collector(mosquitto, f"{BASE}/cmd/#") as sub:
        await sub.publish(set_t, cmd("poll", "ok-1"))
        ack = json.loads(await sub.wait_for(state_t, acked("ok-1")))
        assert ack == {"req_id": "ok-1", "accepted": True, "code": "ok", "reason": "poll done",
                       "state": {"enabled": True, "state": "running"}}
        assert harness.drivers.polled == ["meter"]

        await sub.publish(set_t, cmd("disable", "dis-1"))
        ack = json.loads(await sub.wait_for(state_t, acked("dis-1")))
        assert ack["accepted"] and ack["state"] == {"enabled": False, "state": "stopped"}

        await sub.publish(set_t, cmd("poll", "old-1", ttl_s=5, ts=time.time() - 60))
        ack = json.loads(await sub.wait_for(state_t, acked("old-1")))
        assert (ack["accepted"], ack["code"]) == (False, "expired")

        await sub.publish(set_t, cmd("explode", "bad-1"))
        ack = json.loads(await sub.wait_for(state_t, acked("bad-1")))
        assert ack["code"] == "invalid" and "action" in ack["reason"]

        await sub.publish(set_t, cmd("poll", "noreq", ttl_s=99999))
        ack = json.loads(await sub.wait_for(state_t, acked("noreq")))
        assert ack["code"] == "invalid" and "ttl_s" in ack["reason"]

        await sub.publish(set_t, b"{not json")
        ack = json.loads(await sub.wait_for(state_t, lambda p: json.loads(p)["code"] == "malformed"))
        assert ack["req_id"] is None and ack["accepted"] is False

        big = json.dumps({"req_id": "big-1", "pad": "x" * 5000}).encode()
        await sub.publish(set_t, big)
        ack = json.loads(await sub.wait_for(state_t, lambda p: json.loads(p)["code"] == "oversize"))
        assert "4096" in ack["reason"]

        await sub.publish(f"{BASE}/cmd/reactor/core/set", cmd("poll", "unk-1"))
        ack = json.loads(await sub.wait_for(f"{BASE}/cmd/reactor/core/state", acked("unk-1")))
        assert ack["code"] == "unknown_target"

        await sub.publish(f"{BASE}/cmd/loadshed/boiler/set",
                          json.dumps({"req_id": "ls-1", "ts": time.time(), "ttl_s": 60, "mode": "shed"}))
        ack = json.loads(await sub.wait_for(f"{BASE}/cmd/loadshed/boiler/state", acked("ls-1")))
        assert (ack["accepted"], ack["reason"]) == (False, "load shedding is not configured")

        # A retained command never acts, even one published while the gateway listens.
        await sub.publish(set_t, cmd("enable", "ret-1"), retain=True)
        ack = json.loads(await sub.wait_for(state_t, acked("ret-1")))
        assert (ack["accepted"], ack["code"]) == (False, "retained")
        assert harness.drivers.info["meter"].enabled is False
        await sub.publish(set_t, b"", retain=True)  # clear it from the broker

    counters = harness.ctx.status["commands"]
    assert counters["accepted"] == 2
    assert counters["refused"] == {"expired": 1, "invalid": 2, "malformed": 1, "oversize": 1,
                                   "unknown_target": 1, "not_configured": 1, "retained": 1}
    assert harness.ctx.status["connected"] is True  # nothing above upset the service
    kinds = {n.data["code"] for n in harness.notices}
    assert "expired" in kinds and "malformed" in kinds


async def test_commands_rate_limited_per_target(tmp_path: Path, mosquitto) -> None:
    h = Harness(tmp_path, mosquitto, command_burst=2, command_rate_per_min=1)
    await h.start()
    try:
        set_t, state_t = f"{BASE}/cmd/driver/meter/set", f"{BASE}/cmd/driver/meter/state"
        async with Collector(mosquitto, f"{BASE}/cmd/#") as sub:
            for i in range(3):
                await sub.publish(set_t, cmd("poll", f"p{i}"))
            ack = json.loads(await sub.wait_for(state_t, lambda p: json.loads(p)["req_id"] == "p2"))
            assert (ack["accepted"], ack["code"]) == (False, "rate_limited")
        assert h.drivers.polled == ["meter", "meter"]
    finally:
        await h.stop()


async def test_broker_restart_recovers_status_state_and_discovery(tmp_path: Path, mosquitto) -> None:
    h = Harness(tmp_path, mosquitto)
    await h.start()
    try:
        h.emit(42.0)
        h.hub.notice(Alarm("store.degraded", True, "storage is read-only", "store", h.clock.now(),
                           Severity.ERROR))
        await h.until(lambda: h.service.publisher.offered >= 1 and h.ctx.status["published"] >= 6)
        mosquitto.restart()  # same port, persistence off: every retained message is gone
        await h.until(lambda: h.ctx.status["reconnects"] >= 1 and h.ctx.status["connected"])
        async with Collector(mosquitto, "zaas/#", "homeassistant/#") as sub:
            assert await sub.wait_for(f"{BASE}/status") == b"online"
            assert json.loads(await sub.wait_for(f"{BASE}/device/meter-1/state"))["points"]["power"] == 42
            assert await sub.wait_for(f"{BASE}/device/meter-1/availability") == b"online"
            disco = json.loads(await sub.wait_for(DISCO))
            assert set(disco["cmps"]) == {"power", "energy"}
            assert disco["cmps"]["energy"]["device_class"] == "energy"
            alarm = json.loads(await sub.wait_for(f"{BASE}/alarm/store.degraded"))
            assert alarm["active"] is True and alarm["text"] == "storage is read-only"
        assert h.ctx.status["broker"] == f"mqtt://127.0.0.1:{mosquitto.port}"
        assert h.ctx.status["last_connect"] is not None
    finally:
        await h.stop()


async def test_state_kept_while_the_broker_is_away(tmp_path: Path, mosquitto) -> None:
    h = Harness(tmp_path, mosquitto)
    await h.start()
    try:
        mosquitto.stop()
        await h.until(lambda: not h.ctx.status["connected"])
        for v in range(100, 200):
            h.emit(float(v))  # only the latest is kept
        assert h.ctx.status["last_error"]
        mosquitto.start()
        await h.until(lambda: h.ctx.status["connected"])
        async with Collector(mosquitto, "zaas/#") as sub:
            state = json.loads(await sub.wait_for(f"{BASE}/device/meter-1/state"))
            assert state["points"]["power"] == 199
            assert len([m for m in sub.messages if m[0].endswith("/state")]) == 1
    finally:
        await h.stop()


async def test_alarms_retained_and_device_offline_alarm(harness: Harness, mosquitto) -> None:
    harness.emit(10.0)
    async with Collector(mosquitto, "zaas/#") as sub:
        await sub.wait_for(f"{BASE}/device/meter-1/availability", lambda p: p == b"online")
        alarm = Alarm("device.meter-1.offline", True, "meter-1 does not answer", "meter", harness.clock.now(),
                      Severity.WARNING)
        harness.hub.notice(alarm)
        doc = json.loads(await sub.wait_for(f"{BASE}/alarm/device.meter-1.offline"))
        assert doc["active"] is True and doc["severity"] == "warning" and doc["text"] == "meter-1 does not answer"
        await sub.wait_for(f"{BASE}/device/meter-1/availability", lambda p: p == b"offline")
        ev = json.loads(await sub.wait_for(f"{BASE}/event"))
        assert ev["kind"] == "alarm.raised" and ev["alarm"] == "device.meter-1.offline"
        harness.hub.notice(Alarm("device.meter-1.offline", False, "meter-1 answers again", "meter",
                                 harness.clock.now()))
        await sub.wait_for(f"{BASE}/device/meter-1/availability", lambda p: p == b"online")
        doc = json.loads(await sub.wait_for(f"{BASE}/alarm/device.meter-1.offline",
                                            lambda p: not json.loads(p)["active"]))
        assert doc["text"] == "meter-1 answers again"


async def test_availability_follows_the_drivers_device_availability_events(harness: Harness, mosquitto) -> None:
    harness.emit(10.0)
    async with Collector(mosquitto, "zaas/#") as sub:
        topic = f"{BASE}/device/meter-1/availability"
        await sub.wait_for(topic, lambda p: p == b"online")
        for state in ("offline", "online"):
            harness.hub.notice(Event(DEVICE_AVAILABILITY, f"meter-1 {state}", "meter", harness.clock.now(),
                                     Severity.WARNING, {"device": "meter-1", "state": state, "reason": "test"}))
            await harness.until(lambda s=state: [p for t, p, _ in sub.messages if t == topic][-1] == s.encode())
            ev = json.loads(await sub.wait_for(f"{BASE}/event", lambda p, s=state: json.loads(p)["data"].get(
                "state") == s))
            assert ev["kind"] == DEVICE_AVAILABILITY and ev["data"]["device"] == "meter-1"


async def test_unix_socket(tmp_path: Path) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mq-", dir="/tmp") as d:
        sock = Path(d) / "mqtt.sock"
        with Mosquitto(tmp_path / "broker", unix_socket=sock) as broker:
            h = Harness(tmp_path, broker, socket=sock)
            await h.start()
            try:
                assert h.ctx.status["broker"] == f"unix:{sock}"
                async with Collector(broker, f"{BASE}/status") as sub:
                    assert await sub.wait_for(f"{BASE}/status") == b"online"
            finally:
                await h.stop()


ACL = """
user gateway
topic readwrite zaas/v1/site-a/gw-1/#
topic readwrite homeassistant/#

user integrator
topic read zaas/#
topic write zaas/v1/+/+/cmd/+/+/set

user rogue
topic read zaas/#
"""


async def test_broker_authentication_and_acl(tmp_path: Path) -> None:
    users = {"gateway": "gw-secret", "integrator": "int-secret", "rogue": "rogue-secret"}
    with Mosquitto(tmp_path / "broker", users=users, acl=ACL) as broker:
        pw = tmp_path / "mqtt.pass"
        pw.write_text("wrong\n")
        pw.chmod(0o600)
        h = Harness(tmp_path, broker, username="gateway", password_file=pw)
        h.task = asyncio.create_task(h.service.run())
        try:
            await h.until(lambda: h.ctx.status.get("last_error"))
            assert "refused the login" in h.ctx.status["last_error"]
            assert not h.ctx.status["connected"]
            pw.write_text("gw-secret\n")  # fixed on the box: the next attempt succeeds
            await h.until(lambda: h.ctx.status["connected"])

            set_t, state_t = f"{BASE}/cmd/driver/meter/set", f"{BASE}/cmd/driver/meter/state"
            async with Collector(broker, f"{BASE}/cmd/#", username="integrator", password="int-secret") as integ, \
                    Collector(broker, f"{BASE}/#", username="rogue", password="rogue-secret") as rogue:
                await rogue.publish(set_t, cmd("disable", "rogue-1"))
                await integ.publish(set_t, cmd("poll", "integ-1"))
                ack = json.loads(await integ.wait_for(state_t, lambda p: json.loads(p)["req_id"] == "integ-1"))
                assert ack["accepted"] is True
                # The rogue's command, published first, never reached the gateway.
                assert all(json.loads(p)["req_id"] != "rogue-1" for t, p, _ in integ.messages if t == state_t)
                assert h.drivers.polled == ["meter"] and h.drivers.info["meter"].enabled is True
                assert h.ctx.status["commands"] == {"accepted": 1, "refused": {}, "dropped_at_intake": 0,
                                                    "dropped_queue_full": 0}
                # The rogue still reads what it may read.
                assert await rogue.wait_for(f"{BASE}/status") == b"online"
        finally:
            await h.stop()


async def test_an_ack_while_the_clock_is_unsynchronised_says_its_time_could_not_be_checked(
        harness: Harness, mosquitto) -> None:
    set_t, state_t = f"{BASE}/cmd/driver/meter/set", f"{BASE}/cmd/driver/meter/state"
    harness.clock._assume = False  # no RTC, NTP not reached yet: the service's clock says unsynchronised
    async with Collector(mosquitto, f"{BASE}/cmd/#") as sub:
        # A ts an hour old would be refused as expired on a synchronised clock; here it cannot be judged.
        await sub.publish(set_t, cmd("poll", "unsync-1", ts=time.time() - 3600))
        ack = json.loads(await sub.wait_for(state_t, lambda p: json.loads(p).get("req_id") == "unsync-1"))
        assert (ack["accepted"], ack["code"], ack["time_checked"]) == (True, "ok", False)
        assert ack["reason"].startswith("poll done; its time could not be checked")
        harness.clock._assume = True
        await sub.publish(set_t, cmd("poll", "sync-1"))
        ack = json.loads(await sub.wait_for(state_t, lambda p: json.loads(p).get("req_id") == "sync-1"))
        assert ack["accepted"] and "time_checked" not in ack


async def test_the_gateway_is_a_device_the_others_are_reached_through(harness: Harness, mosquitto) -> None:
    harness.emit(1500.0)
    async with Collector(mosquitto, "homeassistant/#") as sub:
        gw = json.loads(await sub.wait_for("homeassistant/device/zaas_site-a_gw-1/config"))
        assert gw["dev"]["ids"] == ["zaas_site-a_gw-1"] and gw["dev"]["name"] == "site-a gateway gw-1"
        link = gw["cmps"]["link"]
        assert (link["p"], link["device_class"], link["entity_category"]) == \
            ("binary_sensor", "connectivity", "diagnostic")
        assert gw["state_topic"] == f"{BASE}/status" and (link["payload_on"], link["payload_off"]) == \
            ("online", "offline")
        meter = json.loads(await sub.wait_for(DISCO))
        assert meter["dev"]["via_device"] == gw["dev"]["ids"][0]
    # Its object id is the gateway's own: the clean-up of departed devices counts it as current.
    assert harness.service.topics.discovered_device("homeassistant/device/zaas_site-a_gw-1/config") == \
        "zaas_site-a_gw-1"
    assert harness.service.topics.discovered_device("homeassistant/device/zaas_site-a_gw-10/config") is None


async def test_a_large_round_builds_each_message_only_when_a_slot_is_free() -> None:
    """A round over a large building holds at most PUBLISH_CONCURRENCY messages, however many it sends,
    and still reports every one the broker did not acknowledge."""
    import asyncio
    from types import SimpleNamespace

    from zaas_edge.errors import TransientError
    from zaas_edge.mqtt import service as mqtt_service

    built = finished = peak = 0
    release = asyncio.Event()

    def messages(n: int):
        nonlocal built, peak
        for i in range(n):
            built += 1
            peak = max(peak, built - finished)
            yield f"t/{i}", b"x", True

    async def publish(conn: object, topic: str, payload: bytes, retain: bool) -> bool:
        nonlocal finished
        await release.wait()
        finished += 1
        return not topic.endswith("/7")  # one message the broker never acknowledges

    fake = SimpleNamespace(_publish=publish)
    round_ = asyncio.create_task(mqtt_service.MqttService._publish_many(fake, None, messages(1000)))  # type: ignore[arg-type]
    while built < mqtt_service.PUBLISH_CONCURRENCY:
        await asyncio.sleep(0)
    assert built == mqtt_service.PUBLISH_CONCURRENCY  # nothing more is built while every slot waits
    release.set()
    with pytest.raises(TransientError, match="1 of 1000 messages"):
        await round_
    assert finished == built == 1000 and peak <= mqtt_service.PUBLISH_CONCURRENCY
