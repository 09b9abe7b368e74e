"""The MQTT service: the building's broker sees state, availability, alarms,
events and Home Assistant discovery, and sends commands back.

One connection at a time, kept up by a jittered exponential backoff. Every
(re)connection publishes the birth message (``online``, retained; the will
says ``offline``), then the complete retained picture again: every device's
state and availability, every alarm, the discovery of every device. The broker
may have restarted without persistence; nothing is assumed to have survived.
"""

from __future__ import annotations

__all__ = ["MqttService"]

import asyncio
import collections
import contextlib
import dataclasses
import functools
import hashlib
import random
import re
import time
import tomllib
from collections.abc import Callable, Coroutine, Iterable, Iterator
from importlib import resources
from typing import Any

from zaas_edge.aio import wait_for
from zaas_edge.backoff import Backoff
from zaas_edge.driver import DeviceIdentity
from zaas_edge.errors import PermanentError, TransientError, ZaasError
from zaas_edge.health import DEVICE_AVAILABILITY, device_online, offline_alarm_id
from zaas_edge.model import Alarm, Event, Point, Severity
from zaas_edge.mqtt.client import MqttConnection, connect, security_warnings, settings_from_config
from zaas_edge.mqtt.commands import CommandHandler
from zaas_edge.mqtt.discovery import DeviceInfo, PointSpec, alarm_config, device_config, gateway_config, spec_of
from zaas_edge.mqtt.intake import CommandIntake
from zaas_edge.mqtt.payloads import OFFLINE, ONLINE, alarm_event_payload, alarm_payload, dumps, event_payload
from zaas_edge.mqtt.publisher import PolicyTable, StatePublisher
from zaas_edge.mqtt.schedule import Schedules, schedules_of
from zaas_edge.mqtt.topics import Topics
from zaas_edge.mqtt.watches import WatchCallback, Watches, check_topic
from zaas_edge.service import DriverInfo, Service, ServiceContext

HOUSEKEEPING_S = 1.0
EVENT_BACKLOG = 100  # events kept while the broker is away; older ones are dropped and counted
PUBLISH_CONCURRENCY = 64
READ_BACK_S = 2.0  # retained discovery configurations arrive right after SUBACK; this is ample
ALARM_RULES = "alarms"  # the source of the alarm rules' alarms (zaas_edge.alarms), announced as binary_sensors
REFUSED_ALARM = "mqtt.broker_refused"  # the broker refuses who we are (login, TLS): an operator must act


class MqttService(Service):
    """Also the daemon's ``MessagePort``: load shedding publishes to smart relays and watches their
    state topics through it (``connected``, ``publish``, ``watch``)."""

    name = "mqtt"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config()
        self.section = s = cfg.mqtt
        self.topics = Topics(cfg.gateway.site, cfg.gateway.id, s.discovery_prefix)
        self.policies = PolicyTable.from_section(s)
        self.publisher = StatePublisher(self.topics, self.policies, coalesce_s=s.coalesce_ms / 1000)
        self.overrides = ctx.overrides  # the daemon's one table, read by the load-shedding service
        st = ctx.status
        st.update({"connected": False, "broker": None, "last_connect": None, "last_error": None,
                   "reconnects": 0, "failures": 0, "retry_in_s": None, "published": 0, "dropped": 0, "devices": 0,
                   "discovery_removed": 0, "watched": 0, "watch_errors": 0})
        st.setdefault("commands", {"accepted": 0, "refused": {}})
        st["commands"].setdefault("dropped_at_intake", 0)  # over the intake budget: unparsed, unanswered
        st["commands"].setdefault("dropped_queue_full", 0)  # discarded by the client library's full queue
        self.intake = CommandIntake(s.command_intake_per_s, s.command_intake_burst)
        self._queue_dropped_before = st["commands"]["dropped_queue_full"]
        self.commands = CommandHandler(ctx.drivers, self.overrides, rate_per_s=s.command_rate_per_min / 60,
                                       burst=s.command_burst, counters=st["commands"], limits=ctx.limit_overrides)
        self._conn: MqttConnection | None = None
        self._alarms: dict[str, Alarm] = {}
        self._alarms_announced: set[str] = set()  # alarm rules' alarms whose binary_sensor was sent
        self._events: collections.deque[bytes] = collections.deque()
        self._availability: dict[str, bool] = {}  # as last published
        self._reported: dict[str, bool] = {}  # as the drivers' device.availability events last said
        # The digest of the discovery last sent, by device ("" for the gateway's own): enough to know
        # a payload changed, without holding some 5 kB of JSON per device for as long as the daemon runs.
        self._announced: dict[str, bytes] = {}
        self._identities_seen: dict[tuple[str, str], DeviceIdentity] = {}  # as the last announcement had them
        self._schedule_cache: tuple[int, Schedules] | None = None
        self._seen_discovery: set[str] = set()  # our object ids with a retained configuration
        self._settle_at = time.monotonic() + s.discovery_settle_s
        self._connected_at = 0.0
        self._connections = 0
        self._reannounce: asyncio.TimerHandle | None = None
        self._refused: str | None = None  # the text of the active refusal alarm
        self._tasks: set[asyncio.Task[Any]] = set()
        self.watches = Watches(reserved=self.topics.command_filters)
        self._watch_conn: MqttConnection | None = None  # the connection the watched filters are subscribed on

    # -- MessagePort: other devices' topics (load-shedding relays) --------------------

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish to another device's topic at QoS 1, waiting for the broker's acknowledgement.
        ``TransientError`` while the broker is unreachable; ``PermanentError`` for a topic that
        cannot be published to (a wildcard) or one of the gateway's own command topics."""
        try:
            check_topic(topic)
        except ValueError as exc:
            raise PermanentError(f"mqtt: cannot publish: {exc}") from None
        if self.topics.command_target(topic) is not None:
            raise PermanentError(f"mqtt: cannot publish to {topic}: it is one of the gateway's own command topics")
        conn = self._conn
        if conn is None:
            raise TransientError(f"mqtt: not connected to the broker ({self.ctx.status.get('broker')}): "
                                 f"{topic} not published")
        await conn.publish(topic, payload, retain=retain)
        self.ctx.status["published"] += 1

    def watch(self, topic: str, callback: WatchCallback) -> Callable[[], None]:
        """Subscribe to ``topic`` (a filter) for as long as the service runs, across reconnects;
        ``callback(topic, payload)`` gets every message on it, retained ones included. Returns the
        unsubscribe. ``ValueError`` for an invalid filter or one reaching the gateway's commands."""
        handle, new = self.watches.add(topic, callback)
        conn = self._watch_conn
        if new and conn is not None:
            self._spawn(self._subscribe_quietly(conn, topic))

        def unwatch() -> None:
            gone = self.watches.remove(handle)
            c = self._watch_conn
            if gone is not None and c is not None:
                self._spawn(self._unsubscribe_quietly(c, gone))

        return unwatch

    async def _subscribe_quietly(self, conn: MqttConnection, topic_filter: str) -> None:
        # A failure means the connection is going: the next session subscribes to every watch again.
        with contextlib.suppress(ZaasError):
            await conn.subscribe(topic_filter)

    async def _unsubscribe_quietly(self, conn: MqttConnection, topic_filter: str) -> None:
        with contextlib.suppress(ZaasError):
            await conn.unsubscribe(topic_filter)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # a task nobody references may be collected before it runs
        task.add_done_callback(self._tasks.discard)

    def _dispatch_watched(self, topic: str, payload: bytes) -> None:
        """Hand a message to its watchers. A watcher that raises is counted and logged once per power
        of two, and never stops the intake or the other watchers."""
        callbacks = self.watches.callbacks(topic)
        if not callbacks:
            return
        st = self.ctx.status
        st["watched"] += 1
        for cb in callbacks:
            try:
                cb(topic, payload)
            except Exception as exc:  # noqa: BLE001  (a watcher's bug must not stop the intake)
                st["watch_errors"] += 1
                n = st["watch_errors"]
                if n & (n - 1) == 0:
                    self.ctx.log.warning("a watcher of %s failed (%d failures so far): %s: %s", topic, n,
                                         type(exc).__name__, exc, extra={"fields": {"service": "mqtt",
                                                                                     "topic": topic}})

    # -- hub sinks (synchronous, never raise into the hub) ----------------------------

    def _on_notice(self, item: Event | Alarm) -> None:
        if isinstance(item, Alarm):
            self._alarms[item.alarm_id] = item
            self._send_soon(self.topics.alarm(item.alarm_id), alarm_payload(item), retain=True)
            self._event(alarm_event_payload(item))
            for topic, payload in self._alarm_discovery([item]):
                self._send_soon(topic, payload, retain=True)
        else:
            if item.kind == DEVICE_AVAILABILITY:
                self._device_availability(item)
            if item.severity is not Severity.DEBUG:
                self._event(event_payload(item))

    def _alarm_discovery(self, alarms: Iterable[Alarm]) -> list[tuple[str, bytes]]:
        """The Home Assistant binary_sensor of each alarm rule's alarm not yet announced on this connection."""
        if not self.section.discovery:
            return []
        out = []
        for a in alarms:
            if a.source == ALARM_RULES and a.active and a.alarm_id not in self._alarms_announced:
                self._alarms_announced.add(a.alarm_id)
                topic, doc = alarm_config(self.topics, a)
                out.append((topic, dumps(doc)))
        return out

    def _device_availability(self, event: Event) -> None:
        """A driver says a device went online or offline: its availability topic follows at once,
        not at the next housekeeping round."""
        device, state = event.data.get("device"), event.data.get("state")
        if not isinstance(device, str) or state not in ("online", "offline"):
            return
        self._reported[device] = state == "online"
        conn = self._conn
        if conn is not None:
            task = asyncio.get_running_loop().create_task(self._refresh_quietly(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _event(self, payload: bytes) -> None:
        if self._conn is not None:
            self._send_soon(self.topics.event, payload, retain=False)
            return
        if len(self._events) >= EVENT_BACKLOG:
            self._events.popleft()
            self.ctx.status["dropped"] += 1
        self._events.append(payload)

    def _send_soon(self, topic: str, payload: bytes, *, retain: bool) -> None:
        conn = self._conn
        if conn is None:
            return  # retained topics are all re-published at the next connection
        task = asyncio.get_running_loop().create_task(self._publish(conn, topic, payload, retain))
        self._tasks.add(task)  # a task nobody references may be collected before it runs
        task.add_done_callback(self._tasks.discard)

    # -- lifecycle --------------------------------------------------------------------

    async def run(self) -> None:
        hub = self.ctx.hub
        hub.on_readings("mqtt", self.publisher.on_readings)
        hub.on_notice("mqtt", self._on_notice)
        for alarm in list(hub.active_alarms.values()):
            self._alarms[alarm.alarm_id] = alarm
        try:
            await self._connection_loop()
        finally:
            self._conn = None
            self._watch_conn = None
            self.ctx.status["connected"] = False
            # A restarted service must not leave a dead consumer behind.
            hub.off(self.publisher.on_readings)
            hub.off(self._on_notice)

    async def _connection_loop(self) -> None:
        s = self.section
        st = self.ctx.status
        backoff = Backoff(s.reconnect_initial_s, s.reconnect_max_s)
        last_logged: str | None = None
        warned = False
        while True:
            try:
                settings = settings_from_config(self.ctx.config(), will_topic=self.topics.status)
                st["broker"] = settings.describe
                if not warned:  # once per start of the service, not per reconnection
                    warned = True
                    for text in security_warnings(settings):
                        self.ctx.log.warning("%s", text, extra={"fields": {"service": "mqtt"}})
                async with connect(settings) as conn:
                    backoff.reset()
                    st.update(failures=0, retry_in_s=None)
                    last_logged = None
                    self._refusal(None)
                    await self._session(conn)
            except ZaasError as exc:
                st["connected"] = False
                st["last_error"] = str(exc)
                if isinstance(exc, PermanentError):
                    self._refusal(str(exc))
                if str(exc) != last_logged:  # once per distinct problem, not once per retry
                    self.ctx.log.warning("%s; retrying", exc, extra={"fields": {"service": "mqtt"}})
                    last_logged = str(exc)
            finally:
                self._conn = None
                self._watch_conn = None
            delay = backoff.next()
            st.update(failures=backoff.failures, retry_in_s=round(delay, 3))
            await asyncio.sleep(delay)

    def _refusal(self, text: str | None) -> None:
        """Raise the refusal alarm (a wrong password, an untrusted certificate: retrying alone will
        not fix it), or clear it once a connection succeeds. Retries go on meanwhile."""
        if text == self._refused or (text is None and self._refused is None):
            return
        stamp = self.ctx.clock.now()
        where = self.ctx.status.get("broker")
        if text is not None:
            alarm = Alarm(REFUSED_ALARM, True, text, "mqtt", stamp, Severity.ERROR, {"broker": where})
        else:
            alarm = Alarm(REFUSED_ALARM, False, f"broker {where} accepts the gateway again", "mqtt", stamp,
                          Severity.ERROR, {"broker": where})
        self._refused = text
        self.ctx.notice(alarm)

    async def _session(self, conn: MqttConnection) -> None:
        st = self.ctx.status
        self._connections += 1
        if self._connections > 1:
            st["reconnects"] += 1
        self._connected_at = time.monotonic()
        self._queue_dropped_before = st["commands"]["dropped_queue_full"]
        self._announced.clear()
        self._seen_discovery.clear()
        self._availability.clear()
        await conn.publish(self.topics.status, ONLINE, retain=True)
        st["published"] += 1
        await conn.subscribe(*self.topics.command_filters, self.topics.ha_status)
        # From here a new watch subscribes on its own; the ones known now are subscribed here.
        self._watch_conn = conn
        watched = sorted(self.watches.filters())
        if watched:
            await conn.subscribe(*watched)
        if self.section.discovery:
            await conn.subscribe(self.topics.discovery_filter)
        st.update(connected=True, last_connect=time.time(), last_error=None)
        self.ctx.log.info("connected to %s", conn.settings.describe,
                          extra={"fields": {"service": "mqtt", "broker": conn.settings.describe}})
        self._conn = conn
        # The whole retained picture, again.
        await self._publish_many(conn, ((t, p, True) for t, p in self.publisher.everything()))
        await self._refresh_availability(conn, force=True)
        await self._publish_many(conn, [(self.topics.alarm(a.alarm_id), alarm_payload(a), True)
                                        for a in self._alarms.values()])
        self._alarms_announced.clear()
        await self._publish_many(conn, [(t, p, True) for t, p in self._alarm_discovery(self._alarms.values())])
        events, self._events = list(self._events), collections.deque()
        await self._publish_many(conn, [(self.topics.event, e, False) for e in events])
        await self._announce(conn)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._state_loop(conn))
                tg.create_task(self._receive_loop(conn))
                tg.create_task(self._housekeeping_loop(conn))
        except BaseExceptionGroup as group:
            first = _first_zaas(group)
            if first is not None:
                raise first from None
            raise
        except asyncio.CancelledError:
            # A clean stop says so at once instead of leaving the will to the keepalive.
            self._conn = None
            with contextlib.suppress(ZaasError, asyncio.TimeoutError):
                await wait_for(conn.publish(self.topics.status, OFFLINE, retain=True), 2.0)
            raise
        finally:
            self._count_queue_drops(conn)

    def _count_queue_drops(self, conn: MqttConnection) -> None:
        self.ctx.status["commands"]["dropped_queue_full"] = self._queue_dropped_before + conn.queue_dropped

    # -- publishing --------------------------------------------------------------------

    async def _publish(self, conn: MqttConnection, topic: str, payload: bytes, retain: bool) -> bool:
        try:
            await conn.publish(topic, payload, retain=retain)
        except ZaasError:
            self.ctx.status["dropped"] += 1
            return False
        self.ctx.status["published"] += 1
        return True

    async def _publish_many(self, conn: MqttConnection, msgs: Iterable[tuple[str, bytes, bool]]) -> None:
        """Publish ``msgs``, at most ``PUBLISH_CONCURRENCY`` in flight; raises TransientError after
        trying them all if any was not acknowledged.

        ``msgs`` may be a generator: each message is then built only when a slot is free, so a round
        holds the slots' messages, not the building's (the first discovery of 300 meters would
        otherwise hold every payload and a task per message at once, and the peak stays in the
        daemon's resident memory long after they are gone).
        """
        if isinstance(msgs, list):
            if not msgs:
                return
            if len(msgs) == 1:  # the usual round, one device's state: no task to gather
                if not await self._publish(conn, *msgs[0]):
                    raise TransientError("1 of 1 messages not acknowledged by the broker")
                return
        pending = iter(msgs)
        done = [0, 0]  # acknowledged, not acknowledged

        async def slot() -> None:
            for m in pending:  # every slot takes the next message from the one iterator
                done[0 if await self._publish(conn, *m) else 1] += 1

        slots = min(PUBLISH_CONCURRENCY, len(msgs)) if isinstance(msgs, list) else PUBLISH_CONCURRENCY
        await asyncio.gather(*(slot() for _ in range(slots)))
        if done[1]:
            raise TransientError(f"{done[1]} of {sum(done)} messages not acknowledged by the broker")

    async def _state_loop(self, conn: MqttConnection) -> None:
        pub = self.publisher
        while True:
            msgs, nxt = pub.take_due()
            if msgs:
                await self._publish_many(conn, [(t, p, True) for t, p in msgs])
                continue
            await pub.wait(nxt)

    # -- commands and Home Assistant's birth -----------------------------------------

    async def _receive_loop(self, conn: MqttConnection) -> None:
        topics = self.topics
        async for m in conn.messages():
            target = topics.command_target(m.topic)
            if target is not None:
                if m.retain and not m.payload:
                    continue  # someone clearing a retained command: nothing to act on or answer
                if not self.intake.admit(time.monotonic()):
                    self._intake_dropped()
                    continue
                await self._command(conn, target, m.payload, m.retain)
            elif m.topic == topics.ha_status:
                if m.payload.strip() == ONLINE and not m.retain:
                    self._schedule_reannounce(conn)
            else:
                obj = topics.discovered_device(m.topic)
                if obj is not None:
                    (self._seen_discovery.add if m.payload else self._seen_discovery.discard)(obj)
            if target is None:
                self._dispatch_watched(m.topic, m.payload)

    async def _command(self, conn: MqttConnection, target: str, payload: bytes, retain: bool) -> None:
        stamp = self.ctx.clock.now()
        ack = await self.commands.handle(target, payload, retain=retain, wall_s=stamp.wall_ns / 1e9,
                                         mono_s=time.monotonic(), synced=stamp.synced)
        if ack.accepted:
            self.ctx.log.info("mqtt command on %s accepted: %s", target, ack.reason,
                              extra={"fields": {"service": "mqtt", "target": target, "code": ack.code}})
        else:
            # No log line of its own: the event is the record, and the hub's event gate turns a flood
            # of refusals into a counted summary for the store, the journal and MQTT alike.
            self.ctx.notice(Event("mqtt.command_refused", f"command on {target[:200]} refused: {ack.reason}",
                                  "mqtt", stamp, Severity.NOTICE, {"target": target[:200], "code": ack.code}))
        # Acknowledgements of configured targets are retained (the effective state); any other is
        # not, so made-up targets cannot fill the broker's retained store.
        await self._publish(conn, self.topics.command_state(target), ack.payload(),
                            retain=self.commands.known(target))

    def _intake_dropped(self) -> None:
        self.ctx.status["commands"]["dropped_at_intake"] += 1
        self._report_intake()

    def _report_intake(self) -> None:
        n = self.intake.report(time.monotonic())
        if n:
            s = self.section
            self.ctx.log.warning("commands arrive faster than %g/s (burst %d): %d dropped unread and "
                                 "unacknowledged (%d since start)", s.command_intake_per_s,
                                 s.command_intake_burst, n, self.intake.dropped,
                                 extra={"fields": {"service": "mqtt", "dropped": n}})

    def _schedule_reannounce(self, conn: MqttConnection) -> None:
        # Home Assistant restarted: every integration answers at once unless each waits a little.
        if self._reannounce is not None:
            self._reannounce.cancel()

        def go() -> None:
            self._reannounce = None
            if self._conn is conn:
                self._announced.clear()
                asyncio.get_running_loop().create_task(self._announce_quietly(conn))

        self._reannounce = asyncio.get_running_loop().call_later(random.uniform(0.0, 5.0), go)

    async def _announce_quietly(self, conn: MqttConnection) -> None:
        with contextlib.suppress(ZaasError):
            await self._announce(conn)

    # -- devices: discovery and availability ------------------------------------------

    def _declared(self) -> tuple[dict[str, dict[str, Point]], dict[str, str]]:
        """Points declared by the configured drivers, by device, and each device's driver."""
        points: dict[str, dict[str, Point]] = {}
        owner: dict[str, str] = {}
        for driver_id, info in self.ctx.drivers.drivers_info().items():
            for p in info.points:
                points.setdefault(p.device_id, {})[p.quantity] = p
                owner.setdefault(p.device_id, driver_id)
        return points, owner

    def _schedules(self) -> Schedules:
        """Each device's quiet limit, from the configuration in force (a reload may change it)."""
        cfg = self.ctx.config()
        key = id(cfg)
        if self._schedule_cache is None or self._schedule_cache[0] != key:
            self._schedule_cache = (key, schedules_of(cfg.drivers, cfg.mqtt.availability_timeout_s))
        return self._schedule_cache[1]

    def _known_devices(self, drivers: dict[str, DriverInfo]) -> tuple[set[str], dict[str, str]]:
        """Every known device (declared or reporting) and its driver, without building their points'
        specs: what the availability round needs every second, at a building's scale."""
        owner: dict[str, str] = {}
        for driver_id, info in drivers.items():
            for p in info.points:
                owner.setdefault(p.device_id, driver_id)
        return set(owner) | set(self.publisher.latest), owner

    def _devices(self) -> tuple[dict[str, dict[str, PointSpec]], dict[str, str]]:
        """Every known device (declared or reporting) with the points it actually reports: a declared
        point that never came is not announced, so no entity waits forever on a key that never comes."""
        declared, owner = self._declared()
        schedules = self._schedules()
        out: dict[str, dict[str, PointSpec]] = {device: {} for device in declared}
        for device, readings in self.publisher.latest.items():
            specs = out.setdefault(device, {})
            pts = declared.get(device, {})
            limit = schedules.limit(device, owner.get(device))
            for q, r in readings.items():
                p = pts.get(q)
                spec = spec_of(p) if p is not None else PointSpec(q, r.unit)
                # Within its schedule a value is current: expire_after follows the device, not one figure.
                # r.point is "<device>/<q>" already: the policy cache keeps the daemon's one key string.
                expire = int(max(60.0, 2 * self.policies.max_interval(r.point), limit))
                specs[q] = dataclasses.replace(spec, expire_after_s=expire)
        return out, owner

    def _device_info(self, device: str, driver: DriverInfo | None) -> DeviceInfo:
        """The device block: what the device says of itself (its driver's ``DeviceIdentity``: an
        M-Bus header's maker, serial, version and medium, a LoRaWAN profile's model and DevEUI),
        else the manufacturer and model of the profile its driver section names (or the driver's
        type); its site, and the gateway device it is reached through. The medium the device
        reports decides water or gas for its m³; only without one is it guessed from the names."""
        manufacturer, model, medium = "", driver.type if driver else "", device
        if driver is not None:
            for section in self.ctx.config().drivers:
                if section.get("id") != driver.id:
                    continue
                tables = section.get("devices") or section.get("meters") or []
                for table in tables if isinstance(tables, list) else []:
                    if isinstance(table, dict) and table.get("id") == device:
                        profile = table.get("profile")
                        if isinstance(profile, str):
                            manufacturer, model = profile_identity(driver.type, profile)
                        medium = " ".join(str(table.get(k, "")) for k in ("id", "medium", "profile"))
        known = driver.identities.get(device) if driver is not None else None
        serial = sw = ""
        if known is not None:
            manufacturer, model = known.manufacturer or manufacturer, known.model or model
            serial, sw, medium = known.serial, known.sw_version, known.medium or medium
        return DeviceInfo(manufacturer=manufacturer, model=model, serial=serial, medium=medium,
                          site=self.ctx.config().gateway.site, via=self.topics.gateway_object_id, sw_version=sw)

    @staticmethod
    def _identities(drivers: dict[str, DriverInfo]) -> dict[tuple[str, str], DeviceIdentity]:
        return {(d, device): ident for d, info in drivers.items() for device, ident in info.identities.items()}

    def _identities_moved(self) -> bool:
        """A driver learned or changed who a device is (a replaced meter, a DevEUI added) since the
        last announcement: its device block must be sent again though no new point came."""
        return (self.section.discovery
                and self._identities(self.ctx.drivers.drivers_info()) != self._identities_seen)

    async def _announce(self, conn: MqttConnection) -> None:
        if not self.section.discovery:
            return
        devices, owner = self._devices()
        self.publisher.new_points.clear()  # points that appear from here on are the next round's
        info = self.ctx.drivers.drivers_info()
        self._identities_seen = self._identities(info)
        self.ctx.status["devices"] = len(devices)
        await self._publish_many(conn, self._discovery(devices, owner, info))

    def _discovery(self, devices: dict[str, dict[str, PointSpec]], owner: dict[str, str],
                   info: dict[str, DriverInfo]) -> Iterator[tuple[str, bytes, bool]]:
        """The gateway's and every device's discovery configuration that changed since last sent,
        each built when it is about to go."""
        topic, doc = gateway_config(self.topics, self.ctx.config().gateway.site)
        payload = dumps(doc)
        if self._announced.get("") != (digest := _digest(payload)):
            self._announced[""] = digest
            yield topic, payload, True
        for device, specs in sorted(devices.items()):
            if not specs:
                continue
            driver = info.get(owner.get(device, device))
            if driver is None:  # a device no driver declares points for (a LoRa forwarder): who knows it
                driver = next((i for i in info.values() if device in i.identities), None)
            topic, doc = device_config(self.topics, device, specs, info=self._device_info(device, driver))
            payload = dumps(doc)
            if self._announced.get(device) != (digest := _digest(payload)):
                self._announced[device] = digest
                yield topic, payload, True

    async def _remove_departed(self, conn: MqttConnection) -> None:
        devices, _ = self._known_devices(self.ctx.drivers.drivers_info())
        current = {self.topics.object_id(d) for d in devices}
        current |= {self.topics.object_id(d) for d in self.ctx.drivers.drivers_info()}
        current.add(self.topics.gateway_object_id)
        gone = sorted(self._seen_discovery - current)
        for obj in gone:
            topic = f"{self.topics.discovery_prefix}/device/{obj}/config"
            if await self._publish(conn, topic, b"", True):
                self._seen_discovery.discard(obj)
                self.ctx.status["discovery_removed"] += 1
                self.ctx.log.info("removed the discovery of %s (no longer configured)", obj,
                                  extra={"fields": {"service": "mqtt", "object_id": obj}})

    def _online(self, device: str, owner: dict[str, str], drivers: dict[str, Any], now: float,
                schedules: Schedules) -> bool:
        """``zaas_edge.health.device_online``, the definition ``status`` uses, from what the driver
        said (its device.availability events, its offline alarm) and the device's own schedule."""
        info = drivers.get(owner.get(device, device))
        if info is not None and (not info.enabled or info.state != "running"):
            return False
        verdict = self._reported.get(device)
        # The alarm too: a restarted service has not seen the events of devices already offline.
        if offline_alarm_id(device) in self.ctx.hub.active_alarms:
            verdict = False
        last = self.publisher.last_reading.get(device)
        return device_online(verdict, None if last is None else now - last,
                             schedules.limit(device, owner.get(device)))

    async def _refresh_quietly(self, conn: MqttConnection) -> None:
        with contextlib.suppress(ZaasError):  # the housekeeping round tries again
            await self._refresh_availability(conn)

    async def _refresh_availability(self, conn: MqttConnection, *, force: bool = False) -> None:
        drivers = self.ctx.drivers.drivers_info()  # once per round: it snapshots the supervisor
        devices, owner = self._known_devices(drivers)
        now = self.publisher.mono()  # the clock the readings' arrival was taken on
        schedules = self._schedules()
        msgs = []
        for device in sorted(devices):
            online = self._online(device, owner, drivers, now, schedules)
            if force or self._availability.get(device) != online:
                self._availability[device] = online
                msgs.append((self.topics.availability(device), ONLINE if online else OFFLINE, True))
        await self._publish_many(conn, msgs)

    async def _housekeeping_loop(self, conn: MqttConnection) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            self.ctx.heartbeat()
            await self._refresh_availability(conn)
            if self.publisher.new_points or self._identities_moved():
                await self._announce(conn)
            now = time.monotonic()
            if (self.section.discovery and now >= self._settle_at
                    and now >= self._connected_at + READ_BACK_S):
                await self._remove_departed(conn)
            self._report_intake()
            self._count_queue_drops(conn)
            self.ctx.status["offered"] = self.publisher.offered
            self.ctx.status["overrides"] = self.overrides.snapshot(now)


def _digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=16).digest()


@functools.lru_cache(maxsize=64)
def profile_identity(driver_type: str, profile: str) -> tuple[str, str]:
    """Manufacturer and model of a built-in profile, read from its TOML (data the drivers ship, not
    their code); ("", "<profile> (<type>)") when it cannot be read (a profile of one's own)."""
    if _PROFILE_NAME.fullmatch(profile):
        try:
            text = resources.files("zaas_edge.drivers").joinpath("profiles", driver_type, f"{profile}.toml")
            doc = tomllib.loads(text.read_text(encoding="utf-8"))
        except (OSError, ValueError, ModuleNotFoundError):
            doc = {}
        mf, mdl = doc.get("manufacturer") or doc.get("vendor"), doc.get("model")
        if isinstance(mf, str) and isinstance(mdl, str):
            return mf, mdl
    return "", f"{profile} ({driver_type})"


_PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def _first_zaas(group: BaseExceptionGroup) -> ZaasError | None:
    for exc in group.exceptions:
        if isinstance(exc, ZaasError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            inner = _first_zaas(exc)
            if inner is not None:
                return inner
    return None

