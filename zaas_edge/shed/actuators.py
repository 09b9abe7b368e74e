"""Actuators: how a shed, restore or modulate action reaches a load, and how it is confirmed.

Three kinds and their composition, as ``[[shedding.actuators]]`` declares them:

- ``modbus_coil``: writes 1 (on) or 0 (off) to a coil point through the
  driver that owns it (``DriverControl.write``), which reads it back and
  raises when the device did not take it;
- ``modbus_register``: writes the action's setpoint to a holding register the
  same way: a charger's current in A (0 pauses it), a heater's stage, an
  HVAC offset in K; an on/off load writes 1 or 0;
- ``mqtt``: publishes to a smart relay's own topic through the MQTT service
  (:class:`~zaas_edge.service.MessagePort`) and watches its state topic for
  the confirmation. The conventions of the common relays are recognised from
  the topic (:func:`mqtt_convention`): Shelly gen1
  (``shellies/<id>/relay/<n>/command`` with ``on``/``off``, state on
  ``shellies/<id>/relay/<n>``) and Tasmota (``cmnd/<topic>/POWER<n>`` with
  ``ON``/``OFF``, state on ``stat/<topic>/POWER<n>``). Any other topic gets
  ``payload_on``/``payload_off`` and no read-back (the broker's QoS 1
  acknowledgement is all there is);
- ``sequence``: its ``steps`` in order, each confirmed before the next; the
  first failure stops it.

A point named without a device (``relay_3``) is taken as ``<driver>/relay_3``.
Every failure is one :class:`ActuatorFailed` with a sentence saying what did
not happen; the service turns it into the engine's ``actuator_faults``.
"""

from __future__ import annotations

__all__ = [
    "Actuator", "ActuatorCommand", "ActuatorFailed", "ModbusActuator", "MqttActuator", "SequenceActuator",
    "MqttConvention", "mqtt_convention", "build_actuators", "readback_timeout_s",
]

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from zaas_edge.aio import wait_for
from zaas_edge.errors import ZaasError
from zaas_edge.rules.config import ActuatorConfig, SheddingConfig
from zaas_edge.service import DriverControl, MessagePort

_SHELLY = re.compile(r"^shellies/(?P<id>[^/#+]+)/relay/(?P<n>\d+)(?:/command)?$")
_TASMOTA = re.compile(r"^cmnd/(?P<topic>[^#+]+)/(?P<power>POWER\d*)$")
_MIN_READBACK_S = 2.0


class ActuatorFailed(ZaasError):
    """A command that was not carried out, or not confirmed in time."""


@dataclass(frozen=True, slots=True)
class ActuatorCommand:
    """What one action asks of a load's actuator: its level (0 = off) and the setpoint a register takes."""

    load: str
    level: float
    setpoint: float

    @property
    def on(self) -> bool:
        return self.level > 0


class Actuator(Protocol):
    """One way of switching a load. ``apply`` returns once the command is confirmed; raises ActuatorFailed."""

    @property
    def id(self) -> str: ...

    async def apply(self, cmd: ActuatorCommand) -> str:
        """Carry ``cmd`` out and return what confirmed it (for the log and the event)."""
        ...


def readback_timeout_s(cfg: ActuatorConfig) -> float:
    """How long a command may take to be confirmed: twice the actuator's latency, at least 2 s."""
    return max(_MIN_READBACK_S, 2.0 * cfg.latency_s)


def _point_key(cfg: ActuatorConfig) -> str:
    point = cfg.point or ""
    return point if "/" in point or cfg.driver is None else f"{cfg.driver}/{point}"


class ModbusActuator:
    """A coil or a holding register, written through the driver that owns the point."""

    def __init__(self, cfg: ActuatorConfig, drivers: DriverControl) -> None:
        self.cfg = cfg
        self.point = _point_key(cfg)
        self._drivers = drivers
        self._timeout_s = readback_timeout_s(cfg)

    @property
    def id(self) -> str:
        return self.cfg.id

    def value_of(self, cmd: ActuatorCommand) -> float:
        return (1.0 if cmd.on else 0.0) if self.cfg.kind == "modbus_coil" else float(cmd.setpoint)

    async def apply(self, cmd: ActuatorCommand) -> str:
        value = self.value_of(cmd)
        try:
            got = await wait_for(self._drivers.write(self.point, value), self._timeout_s)
        except TimeoutError:
            raise ActuatorFailed(f"actuator {self.id}: no answer writing {value:g} to {self.point} "
                                 f"within {self._timeout_s:g}s") from None
        except ZaasError as exc:
            raise ActuatorFailed(f"actuator {self.id}: writing {value:g} to {self.point} failed: {exc}") from None
        if abs(got - value) > max(0.5 if self.cfg.kind == "modbus_coil" else 0.05, 1e-9 * abs(value)):
            raise ActuatorFailed(f"actuator {self.id}: wrote {value:g} to {self.point}, read back {got:g}")
        return f"{self.point} = {got:g}"


@dataclass(frozen=True, slots=True)
class MqttConvention:
    """Where a relay takes its commands and tells its state, and the words it uses."""

    style: str  # "shelly", "tasmota" or "generic"
    command_topic: str
    state_topic: str | None
    payload_on: str
    payload_off: str

    def state_of(self, payload: bytes) -> bool | None:
        """The relay's state in a state message: True on, False off, None unreadable."""
        text = payload.decode("utf-8", errors="replace").strip()
        if self.style == "tasmota" and text.startswith("{"):
            # a JSON result ({"POWER":"ON"}) when SetOption4 is off and the state comes on RESULT
            m = re.search(r'"POWER\d*"\s*:\s*"(\w+)"', text)
            text = m.group(1) if m else ""
        word = text.lower()
        if word in (self.payload_on.lower(), "on", "1", "true"):
            return True
        if word in (self.payload_off.lower(), "off", "0", "false", "overpower"):
            return False  # a Shelly's "overpower": its own protection opened the relay
        return None


def mqtt_convention(cfg: ActuatorConfig) -> MqttConvention:
    """Recognise a Shelly gen1 or Tasmota topic; anything else is published as configured."""
    topic = cfg.topic or ""
    defaults = (cfg.payload_on, cfg.payload_off) == ("ON", "OFF")
    m = _SHELLY.match(topic)
    if m is not None:
        base = f"shellies/{m['id']}/relay/{m['n']}"
        on, off = ("on", "off") if defaults else (cfg.payload_on, cfg.payload_off)
        return MqttConvention("shelly", f"{base}/command", base, on, off)
    m = _TASMOTA.match(topic)
    if m is not None:
        return MqttConvention("tasmota", topic, f"stat/{m['topic']}/{m['power']}", cfg.payload_on, cfg.payload_off)
    return MqttConvention("generic", topic, None, cfg.payload_on, cfg.payload_off)


class MqttActuator:
    """A smart relay on the building's broker, confirmed by its state topic."""

    def __init__(self, cfg: ActuatorConfig, messages: Callable[[], MessagePort | None]) -> None:
        self.cfg = cfg
        self.convention = mqtt_convention(cfg)
        self._messages = messages
        self._port: MessagePort | None = None
        self._unwatch: Callable[[], None] | None = None
        self._waiters: list[tuple[bool, asyncio.Future[None]]] = []
        self.state: bool | None = None  # the last state the relay told, None until it has
        self.refused: str | None = None  # why the port refused to watch the state topic
        self._timeout_s = readback_timeout_s(cfg)

    @property
    def id(self) -> str:
        return self.cfg.id

    def attach(self) -> MessagePort | None:
        """Watch the state topic on the MQTT service running now (again, after it restarted)."""
        port = self._messages()
        if port is not self._port:
            self.detach()
            self._port = port
            if port is not None and self.convention.state_topic is not None and self.cfg.readback:
                try:
                    self._unwatch = port.watch(self.convention.state_topic, self._on_state)
                except ValueError as exc:  # a filter the port refuses: every command then fails saying why
                    self.refused = str(exc)
        return port

    def detach(self) -> None:
        if self._unwatch is not None:
            try:
                self._unwatch()
            except Exception:  # noqa: BLE001  (a dead port's unsubscribe may fail; it is gone either way)
                pass
        self._unwatch, self._port = None, None

    def _on_state(self, topic: str, payload: bytes) -> None:
        state = self.convention.state_of(payload)
        if state is None:
            return
        self.state = state
        for want, fut in list(self._waiters):
            if want == state and not fut.done():
                fut.set_result(None)

    async def apply(self, cmd: ActuatorCommand) -> str:
        port = self.attach()
        if self.refused is not None:
            raise ActuatorFailed(f"actuator {self.id}: cannot watch {self.convention.state_topic}: {self.refused}")
        if port is None or not port.connected:
            raise ActuatorFailed(f"actuator {self.id}: the MQTT service is not connected, "
                                 f"cannot publish to {self.convention.command_topic}")
        conv = self.convention
        payload = conv.payload_on if cmd.on else conv.payload_off
        confirm = conv.state_topic is not None and self.cfg.readback
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (cmd.on, fut)
        if confirm:
            self._waiters.append(entry)
        try:
            try:
                await wait_for(port.publish(conv.command_topic, payload.encode()), self._timeout_s)
            except TimeoutError:
                raise ActuatorFailed(f"actuator {self.id}: the broker did not take {conv.command_topic} "
                                     f"{payload} within {self._timeout_s:g}s") from None
            except ZaasError as exc:
                raise ActuatorFailed(f"actuator {self.id}: publishing {conv.command_topic} {payload} "
                                     f"failed: {exc}") from None
            if not confirm:
                return f"{conv.command_topic} {payload} (published, no read-back)"
            try:
                await wait_for(fut, self._timeout_s)
            except TimeoutError:
                told = {None: "nothing", True: "on", False: "off"}[self.state]
                raise ActuatorFailed(f"actuator {self.id}: published {payload} on {conv.command_topic} but "
                                     f"{conv.state_topic} did not confirm within {self._timeout_s:g}s "
                                     f"(last told: {told})") from None
            return f"{conv.state_topic} {'on' if cmd.on else 'off'}"
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)


class SequenceActuator:
    """Several actuators, in order, each confirmed before the next."""

    def __init__(self, cfg: ActuatorConfig, steps: list[Actuator]) -> None:
        self.cfg = cfg
        self.steps = steps

    @property
    def id(self) -> str:
        return self.cfg.id

    async def apply(self, cmd: ActuatorCommand) -> str:
        done = []
        for i, step in enumerate(self.steps, 1):
            try:
                done.append(await step.apply(cmd))
            except ActuatorFailed as exc:
                raise ActuatorFailed(f"actuator {self.id}: step {i} of {len(self.steps)} failed: {exc}") from None
        return "; ".join(done)


class _Broken:
    """An actuator whose configuration cannot work (a sequence that contains itself): every command fails."""

    def __init__(self, actuator_id: str, why: str) -> None:
        self._id, self.why = actuator_id, why

    @property
    def id(self) -> str:
        return self._id

    async def apply(self, cmd: ActuatorCommand) -> str:
        raise ActuatorFailed(f"actuator {self._id}: {self.why}")


def build_actuators(cfg: SheddingConfig, drivers: DriverControl,
                    messages: Callable[[], MessagePort | None]) -> Mapping[str, Actuator]:
    """Every configured actuator by id; a sequence shares its steps' instances."""
    by_id = {a.id: a for a in cfg.actuators}
    built: dict[str, Actuator] = {}

    def make(aid: str, path: tuple[str, ...]) -> Actuator:
        if aid in built:
            return built[aid]
        a = by_id[aid]
        if aid in path:
            return _Broken(aid, f"sequence loops back on itself ({' > '.join((*path, aid))})")
        act: Actuator
        if a.kind in ("modbus_coil", "modbus_register"):
            act = ModbusActuator(a, drivers)
        elif a.kind == "mqtt":
            act = MqttActuator(a, messages)
        else:
            steps = [make(s, (*path, aid)) for s in a.steps]
            broken = next((s for s in steps if isinstance(s, _Broken)), None)
            act = _Broken(aid, broken.why) if broken is not None else SequenceActuator(a, steps)
        built[aid] = act
        return act

    for a in cfg.actuators:
        make(a.id, ())
    return built
