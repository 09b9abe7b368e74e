"""Actuators: a Modbus relay module (simulated, through the real driver) and MQTT smart relays.

The MQTT actuators are tested against an in-memory MessagePort whose
simulated Shelly and Tasmota relays answer as the real ones do, and against
the real MQTT service (the daemon's MessagePort) and mosquitto.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tests.mosquitto as broker_helpers
from hil.modbus_harness import DriverRun, bus_options
from hil.modbus_sim import SimBus, serve_tcp
from hil.relay_sim import RelayModule
from zaas_edge.errors import PermanentError, TransientError
from zaas_edge.rules.config import ActuatorConfig, SheddingConfig
from zaas_edge.service import DriverInfo, MessagePort
from zaas_edge.shed.actuators import (
    ActuatorCommand,
    ActuatorFailed,
    ModbusActuator,
    MqttActuator,
    SequenceActuator,
    build_actuators,
    mqtt_convention,
)

mosquitto = broker_helpers.mosquitto  # the fixture
ON = ActuatorCommand("load", 1.0, 1.0)
OFF = ActuatorCommand("load", 0.0, 0.0)


def actuator(**kw: object) -> ActuatorConfig:
    return ActuatorConfig.model_validate({"id": "a", "latency_s": 0.0, **kw})


# -- the conventions ------------------------------------------------------------------------


def test_shelly_and_tasmota_topics_are_recognised_with_their_state_topics_and_words() -> None:
    c = mqtt_convention(actuator(kind="mqtt", topic="shellies/shelly1-A1B2/relay/0/command"))
    assert (c.style, c.command_topic, c.state_topic, c.payload_on, c.payload_off) == (
        "shelly", "shellies/shelly1-A1B2/relay/0/command", "shellies/shelly1-A1B2/relay/0", "on", "off")
    c = mqtt_convention(actuator(kind="mqtt", topic="shellies/plug/relay/1"))
    assert c.command_topic == "shellies/plug/relay/1/command" and c.state_topic == "shellies/plug/relay/1"
    c = mqtt_convention(actuator(kind="mqtt", topic="cmnd/boiler/POWER2"))
    assert (c.style, c.state_topic, c.payload_on) == ("tasmota", "stat/boiler/POWER2", "ON")
    c = mqtt_convention(actuator(kind="mqtt", topic="home/boiler/set", payload_on="1", payload_off="0"))
    assert (c.style, c.state_topic, c.payload_on, c.payload_off) == ("generic", None, "1", "0")


def test_state_messages_are_read_as_each_relay_words_them() -> None:
    shelly = mqtt_convention(actuator(kind="mqtt", topic="shellies/x/relay/0/command"))
    assert [shelly.state_of(p) for p in (b"on", b"off", b"overpower", b"??")] == [True, False, False, None]
    tasmota = mqtt_convention(actuator(kind="mqtt", topic="cmnd/x/POWER"))
    assert [tasmota.state_of(p) for p in (b"ON", b"OFF", b'{"POWER":"ON"}', b"{}")] == [True, False, True, None]


@given(st.binary(max_size=200))
def test_a_garbage_state_message_never_raises(payload: bytes) -> None:
    for topic in ("shellies/x/relay/0", "cmnd/x/POWER", "any/topic"):
        assert mqtt_convention(actuator(kind="mqtt", topic=topic)).state_of(payload) in (True, False, None)


# -- Modbus: the real driver and a simulated relay module ----------------------------------------


class DriverPort:
    """DriverControl over one running driver (what the daemon does for every driver)."""

    def __init__(self, run: DriverRun) -> None:
        self.run = run

    def drivers_info(self) -> dict[str, DriverInfo]:
        return {}

    async def poll_now(self, driver_id: str) -> None:
        await self.run.driver.poll_now()

    async def set_enabled(self, driver_id: str, enabled: bool) -> None:
        return None

    async def write(self, point: str, value: float) -> float:
        return await self.run.driver.write(point, value)


RELAY = {"id": "rm", "unit": 2, "profile": "waveshare-relay-8ch"}


async def test_a_coil_actuator_switches_the_relay_and_a_disobedient_one_fails_with_the_reason() -> None:
    relays = RelayModule(2, on=[1, 2])
    relays.disobey.add(2)
    async with await serve_tcp(SimBus([relays])) as srv:
        async with DriverRun(bus_options(srv, [RELAY], write_retries=0)) as run:
            port = DriverPort(run)
            good = ModbusActuator(actuator(kind="modbus_coil", driver="rm", point="relay_1"), port)
            assert await good.apply(OFF) == "rm/relay_1 = 0"
            assert not relays.is_on(1)
            assert await good.apply(ON) == "rm/relay_1 = 1" and relays.is_on(1)
            bad = ModbusActuator(actuator(kind="modbus_coil", driver="rm", point="rm/relay_2"), port)
            with pytest.raises(ActuatorFailed, match="actuator a: writing 0 to rm/relay_2 failed: .*read back 1"):
                await bad.apply(OFF)
            assert relays.is_on(2)
            missing = ModbusActuator(actuator(kind="modbus_coil", driver="rm", point="relay_9"), port)
            with pytest.raises(ActuatorFailed, match="no point 'relay_9'"):
                await missing.apply(OFF)


async def test_a_register_actuator_throttles_and_pauses_the_simulated_charger() -> None:
    from hil.evcharger_sim import VOLTAGE, EvCharger

    ev = EvCharger(3)
    ev.plug(phases=3)
    async with await serve_tcp(SimBus([ev])) as srv:
        charger = {"id": "wb", "unit": 3, "profile": "heidelberg-energy-control"}
        async with DriverRun(bus_options(srv, [charger], write_retries=0)) as run:
            act = ModbusActuator(actuator(kind="modbus_register", driver="wb", point="current_limit"), DriverPort(run))
            assert await act.apply(ActuatorCommand("car", 10, 10)) == "wb/current_limit = 10"
            await run.driver.poll_now()
            assert run.latest("wb/power").value == 10 * VOLTAGE * 3
            assert await act.apply(ActuatorCommand("car", 0, 0)) == "wb/current_limit = 0"  # paused
            with pytest.raises(ActuatorFailed, match="wrote 20, read back 16"):
                await act.apply(ActuatorCommand("car", 20, 20))


class ScriptedDrivers:
    """A DriverControl whose write answers what the test says: a value, an error or nothing."""

    def __init__(self, answer: Callable[[str, float], float]) -> None:
        self.answer = answer
        self.writes: list[tuple[str, float]] = []

    def drivers_info(self) -> dict[str, DriverInfo]:
        return {}

    async def poll_now(self, driver_id: str) -> None:
        return None

    async def set_enabled(self, driver_id: str, enabled: bool) -> None:
        return None

    async def write(self, point: str, value: float) -> float:
        self.writes.append((point, value))
        return self.answer(point, value)


async def test_a_register_actuator_writes_the_setpoint_and_refuses_a_read_back_that_differs() -> None:
    drivers = ScriptedDrivers(lambda p, v: 6.0)  # a charger that keeps 6 A whatever it is told
    reg = ModbusActuator(actuator(kind="modbus_register", driver="wb", point="wb/current_limit"), drivers)
    assert await reg.apply(ActuatorCommand("car", 6, 6)) == "wb/current_limit = 6"
    with pytest.raises(ActuatorFailed, match="wrote 10 to wb/current_limit, read back 6"):
        await reg.apply(ActuatorCommand("car", 10, 10))
    assert drivers.writes == [("wb/current_limit", 6.0), ("wb/current_limit", 10.0)]


# -- MQTT: an in-memory port with simulated relays ----------------------------------------------


class MemoryPort:
    """A MessagePort over an in-memory broker: exact topics, delivered on the next loop turn."""

    def __init__(self) -> None:
        self.connected = True
        self.watchers: dict[str, list[Callable[[str, bytes], None]]] = {}
        self.published: list[tuple[str, bytes]] = []
        self.devices: dict[str, Callable[[bytes], None]] = {}

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        if not self.connected:
            raise TransientError("broker unreachable")
        self.published.append((topic, payload))
        if topic in self.devices:
            asyncio.get_running_loop().call_soon(self.devices[topic], payload)

    def watch(self, topic: str, callback: Callable[[str, bytes], None]) -> Callable[[], None]:
        self.watchers.setdefault(topic, []).append(callback)
        return lambda: self.watchers[topic].remove(callback)

    def tell(self, topic: str, payload: bytes) -> None:
        for cb in list(self.watchers.get(topic, ())):
            cb(topic, payload)

    def shelly(self, ident: str, *, obey: bool = True) -> None:
        base = f"shellies/{ident}/relay/0"
        self.devices[f"{base}/command"] = lambda p: self.tell(base, p if obey else b"off")

    def tasmota(self, topic: str) -> None:
        self.devices[f"cmnd/{topic}/POWER"] = lambda p: self.tell(f"stat/{topic}/POWER", p.upper())


def test_the_memory_port_is_a_message_port() -> None:
    assert isinstance(MemoryPort(), MessagePort)


async def test_a_shelly_and_a_tasmota_relay_are_switched_and_confirmed_by_their_state_topics() -> None:
    port = MemoryPort()
    port.shelly("boiler")
    port.tasmota("pump")
    shelly = MqttActuator(actuator(kind="mqtt", topic="shellies/boiler/relay/0/command"), lambda: port)
    tasmota = MqttActuator(actuator(id="b", kind="mqtt", topic="cmnd/pump/POWER"), lambda: port)
    assert await shelly.apply(OFF) == "shellies/boiler/relay/0 off"
    assert await tasmota.apply(ON) == "stat/pump/POWER on"
    assert port.published == [("shellies/boiler/relay/0/command", b"off"), ("cmnd/pump/POWER", b"ON")]
    assert shelly.state is False and tasmota.state is True


async def test_a_relay_that_does_not_confirm_fails_naming_its_state_topic() -> None:
    port = MemoryPort()
    port.shelly("stuck", obey=False)  # answers "off" whatever it is told
    act = MqttActuator(actuator(kind="mqtt", topic="shellies/stuck/relay/0/command"), lambda: port)
    with pytest.raises(ActuatorFailed, match=r"shellies/stuck/relay/0 did not confirm .*\(last told: off\)"):
        await act.apply(ON)


async def test_without_the_mqtt_service_or_its_broker_an_mqtt_command_fails_at_once() -> None:
    act = MqttActuator(actuator(kind="mqtt", topic="cmnd/x/POWER"), lambda: None)
    with pytest.raises(ActuatorFailed, match="the MQTT service is not connected"):
        await act.apply(ON)
    port = MemoryPort()
    act = MqttActuator(actuator(kind="mqtt", topic="cmnd/x/POWER"), lambda: port)
    port.connected = False
    with pytest.raises(ActuatorFailed, match="not connected"):
        await act.apply(ON)


async def test_a_generic_topic_is_published_without_read_back() -> None:
    port = MemoryPort()
    act = MqttActuator(actuator(kind="mqtt", topic="home/boiler/set", payload_on="1", payload_off="0"), lambda: port)
    assert await act.apply(OFF) == "home/boiler/set 0 (published, no read-back)"
    assert port.published == [("home/boiler/set", b"0")]


async def test_a_sequence_runs_its_steps_in_order_and_stops_at_the_first_failure() -> None:
    port = MemoryPort()
    port.tasmota("one")
    cfg = SheddingConfig.model_validate({"actuators": [
        {"id": "one", "kind": "mqtt", "topic": "cmnd/one/POWER", "latency_s": 0},
        {"id": "two", "kind": "modbus_coil", "driver": "rm", "point": "relay_2", "latency_s": 0},
        {"id": "both", "kind": "sequence", "steps": ["one", "two"], "latency_s": 0},
        {"id": "loop", "kind": "sequence", "steps": ["loop"]},
    ]})

    def refuse(point: str, value: float) -> float:
        raise PermanentError("read back 1")

    drivers = ScriptedDrivers(lambda p, v: v)
    acts = build_actuators(cfg, drivers, lambda: port)
    both = acts["both"]
    assert isinstance(both, SequenceActuator) and both.steps == [acts["one"], acts["two"]]
    assert await both.apply(OFF) == "stat/one/POWER off; rm/relay_2 = 0"
    drivers.answer = refuse
    with pytest.raises(ActuatorFailed, match="actuator both: step 2 of 2 failed: .*read back 1"):
        await both.apply(ON)
    assert port.published == [("cmnd/one/POWER", b"OFF"), ("cmnd/one/POWER", b"ON")]
    with pytest.raises(ActuatorFailed, match=r"sequence loops back on itself \(loop > loop\)"):
        await acts["loop"].apply(ON)


# -- MQTT: the real MQTT service and mosquitto ---------------------------------------------------


async def _relay_device(broker: object, obey: set[str]) -> None:
    """A Shelly and a Tasmota on the broker: each command answered on the state topic (if it obeys)."""
    import aiomqtt

    async with aiomqtt.Client(broker.host, broker.port, identifier="relays") as client:  # type: ignore[attr-defined]
        await client.subscribe("shellies/+/relay/+/command", qos=1)
        await client.subscribe("cmnd/+/POWER", qos=1)
        async for m in client.messages:
            topic, payload = m.topic.value, bytes(m.payload)  # type: ignore[arg-type]
            if topic.startswith("shellies/"):
                device, state = topic.split("/")[1], topic.removesuffix("/command")
            else:
                device, state = topic.split("/")[1], "stat/" + topic.removeprefix("cmnd/")
            await client.publish(state, payload if device in obey else b"off", qos=1)


async def test_relays_on_a_real_broker_through_the_mqtt_service(tmp_path, mosquitto) -> None:
    import contextlib

    from zaas_edge.clock import SystemClock
    from zaas_edge.config_model import Config, GatewaySection
    from zaas_edge.hub import Hub
    from zaas_edge.mqtt.config import MqttSection
    from zaas_edge.mqtt.service import MqttService
    from zaas_edge.service import ServiceContext

    config = Config(gateway=GatewaySection(id="gw-1", site="site-a", state_dir=tmp_path, runtime_dir=tmp_path),
                    mqtt=MqttSection(enabled=True, host=mosquitto.host, port=mosquitto.port, discovery_settle_s=0))
    ctx = ServiceContext(name="mqtt", config=lambda: config, hub=Hub(), clock=SystemClock(assume_synced=True),
                         outbox=None, drivers=ScriptedDrivers(lambda p, v: v),  # type: ignore[arg-type]
                         notice=lambda item: None, heartbeat=lambda: None, add_command=lambda name, handler: None)
    service = MqttService(ctx)
    assert isinstance(service, MessagePort)
    task = asyncio.create_task(service.run())
    device = asyncio.create_task(_relay_device(mosquitto, obey={"boiler", "pump"}))
    try:
        while not service.connected:
            await asyncio.sleep(0.02)
        shelly = MqttActuator(actuator(kind="mqtt", topic="shellies/boiler/relay/0/command"), lambda: service)
        tasmota = MqttActuator(actuator(id="b", kind="mqtt", topic="cmnd/pump/POWER"), lambda: service)
        stuck = MqttActuator(actuator(id="c", kind="mqtt", topic="shellies/stuck/relay/0/command"),
                             lambda: service)
        for act in (shelly, tasmota, stuck):
            act.attach()
        await asyncio.sleep(0.2)  # the subscriptions reach the broker (no event tells the port's caller)
        assert await shelly.apply(OFF) == "shellies/boiler/relay/0 off"
        assert await shelly.apply(ON) == "shellies/boiler/relay/0 on"
        assert await tasmota.apply(OFF) == "stat/pump/POWER off"
        with pytest.raises(ActuatorFailed, match="did not confirm"):
            await stuck.apply(ON)
    finally:
        for t in (device, task):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
