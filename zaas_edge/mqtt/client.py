"""The one module that knows aiomqtt: connect, publish, subscribe, receive.

Everything above it speaks ``BrokerSettings``, ``MqttConnection`` and
``Message``, and sees our error types only: a refused login is a
``PermanentError`` (retrying will not fix a wrong password, though the
service still retries slowly in case the broker's files are being fixed),
anything else a ``TransientError``. An aiomqtt upgrade touches this file alone.
"""

from __future__ import annotations

__all__ = ["BrokerSettings", "MqttConnection", "Message", "connect", "settings_from_config", "security_warnings",
           "QOS"]

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from zaas_edge.errors import PermanentError, TransientError, ZaasError
from zaas_edge.mqtt.payloads import OFFLINE
from zaas_edge.ratelimit import Pacer

QOS = 1
MAX_QUEUED_INCOMING = 1000
# CONNACK codes that mean "who you are" rather than "not now" (3.1.1 and 5).
_AUTH_CODES = {4, 5, 0x86, 0x87, 0x8C}


@dataclass(frozen=True)
class BrokerSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    socket: Path | None = None  # a Unix socket replaces host and port
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None  # client certificate, with key_file, for brokers that require one
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None
    client_id: str = "zaas-edge"
    protocol: str = "5"
    keepalive_s: int = 30
    session_expiry_s: int = 3600
    clean: bool = False  # persistent session unless asked (tools, tests)
    will_topic: str | None = None
    timeout_s: float = 10.0

    @property
    def describe(self) -> str:
        if self.socket is not None:
            return f"unix:{self.socket}"
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def settings_from_config(cfg: object, will_topic: str | None = None) -> BrokerSettings:
    """Settings from the ``[mqtt]`` and ``[gateway]`` sections; reads the password file."""
    from zaas_edge.secrets import read_secret

    mqtt = cfg.mqtt  # type: ignore[attr-defined]
    gw = cfg.gateway  # type: ignore[attr-defined]
    return BrokerSettings(
        host=mqtt.host, port=mqtt.port, socket=mqtt.socket, tls=mqtt.tls or mqtt.cert_file is not None,
        ca_file=mqtt.ca_file, cert_file=mqtt.cert_file, key_file=mqtt.key_file,
        username=mqtt.username,
        password=read_secret(mqtt.password_file) if mqtt.password_file else None,
        client_id=mqtt.client_id or f"zaas-edge-{gw.site}-{gw.id}"[:64],
        protocol=mqtt.protocol, keepalive_s=mqtt.keepalive_s, session_expiry_s=mqtt.session_expiry_s,
        will_topic=will_topic,
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def security_warnings(settings: BrokerSettings) -> list[str]:
    """What the operator should hear once at start about how the gateway reaches its broker:
    TLS trusting the whole system store, a password sent in clear beyond this box."""
    out = []
    where = settings.describe
    if settings.tls and settings.ca_file is None:
        out.append(f"TLS to {where} trusts every CA in the system's store ([mqtt] ca_file is not set): "
                   "set ca_file to the CA that signed the broker's certificate, so only that broker is trusted")
    if (settings.password is not None and not settings.tls and settings.socket is None
            and not _loopback(settings.host)):
        out.append(f"the broker password goes in clear to {where} (TLS is off and the broker is not on "
                   "this box): set [mqtt] tls = true and ca_file, or reach the broker over loopback or its socket")
    return out


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``exc``: aiomqtt re-raises paho's as a bare ``MqttError``, keeping it
    only as the exception's context."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _translate(exc: Exception, settings: BrokerSettings) -> ZaasError:
    where = settings.describe
    tls = _tls_failure(exc)
    if tls is not None:
        if isinstance(tls, ssl.SSLCertVerificationError):
            why = tls.verify_message or tls.reason or str(tls)
            return PermanentError(f"broker {where}: its TLS certificate is not trusted ({why}): check [mqtt] "
                                  "ca_file names the CA that signed the broker's certificate, and that the "
                                  "certificate names the host in [mqtt] host")
        return PermanentError(f"broker {where}: TLS failed ({tls.reason or tls}): check [mqtt] ca_file, "
                              "cert_file and key_file against the broker's TLS listener")
    if isinstance(exc, MqttConnectError):
        rc = exc.rc
        code = getattr(rc, "value", rc)
        if isinstance(code, int) and code in _AUTH_CODES:
            return PermanentError(f"broker {where} refused the login ({exc}): check [mqtt] username, "
                                  "password_file and the broker's password file and ACL")
        return TransientError(f"broker {where} refused the connection: {exc}")
    if isinstance(exc, aiomqtt.MqttError):
        hint = ""
        if settings.tls and settings.cert_file is None and "timed out" in str(exc):
            # A TLS 1.3 broker that wants a client certificate says so after the handshake; the
            # client library drops that alert and waits for a CONNACK that never comes.
            hint = (" (no answer to CONNECT over TLS: if the broker requires client certificates, "
                    "set [mqtt] cert_file and key_file)")
        return TransientError(f"broker {where}: {exc or 'connection failed'}{hint}")
    return TransientError(f"broker {where}: {type(exc).__name__}: {exc}")


def _tls_context(settings: BrokerSettings) -> ssl.SSLContext:
    # Always verified: the certificate chain against the CA and the name against host.
    ctx = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if settings.cert_file is not None:
        try:
            ctx.load_cert_chain(str(settings.cert_file), str(settings.key_file) if settings.key_file else None)
        except (OSError, ssl.SSLError) as exc:
            # Named by path only: the key's content never reaches a message.
            raise PermanentError(f"client certificate {settings.cert_file} or its key {settings.key_file} "
                                 f"cannot be used ({getattr(exc, 'reason', None) or exc.strerror or exc}): "
                                 "check [mqtt] cert_file and key_file (PEM, the key matching the "
                                 "certificate)") from None
    return ctx


class _QueueFullLog(logging.Filter):
    """The client library logs "Message queue is full" once per message it discards: 20,000 lines
    for a flood of 20,000 commands. This counts every one and lets one line through per
    ``every_s``, with the count since the previous line. A discarded command gets no acknowledgement."""

    TEXT = "Message queue is full. Discarding message."

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.dropped = 0
        self._clock = clock
        self._pacer = Pacer(every_s)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != self.TEXT:
            return True
        self.dropped += 1
        held = self._pacer.admit("queue_full", self._clock())
        if held is None:
            return False
        record.msg = ("the incoming message queue is full (a flood of commands?): %d messages discarded "
                      "unread and unacknowledged since the last report, %d in all")
        record.args = (held + 1, self.dropped)
        return True


def _client_logger(queue_full: _QueueFullLog) -> logging.Logger:
    """A logger of this connection's own (outside the logging registry, so connections do not pile
    up in it), below ``zaas_edge.mqtt`` so its lines reach the journal like any other."""
    logger = logging.Logger("zaas_edge.mqtt.client")
    logger.parent = logging.getLogger("zaas_edge.mqtt")
    logger.setLevel(logging.INFO)  # the library's per-packet debug lines stay out even when debugging
    logger.addFilter(queue_full)
    return logger


class MqttConnection:
    """An open session with the broker."""

    def __init__(self, client: aiomqtt.Client, settings: BrokerSettings,
                 queue_full: _QueueFullLog | None = None) -> None:
        self._client = client
        self.settings = settings
        self._v5 = settings.protocol == "5"
        self._queue_full = queue_full or _QueueFullLog()

    @property
    def queue_dropped(self) -> int:
        """Messages the client library discarded because its incoming queue was full."""
        return self._queue_full.dropped

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = QOS) -> None:
        """Publish and, at QoS 1, wait for the broker's acknowledgement."""
        try:
            await self._client.publish(topic, payload, qos=qos, retain=retain)
        except (aiomqtt.MqttError, OSError) as exc:
            raise _translate(exc, self.settings) from None

    async def subscribe(self, *filters: str, qos: int = QOS) -> None:
        """Subscribe; under MQTT 5 the retain flag is kept as published, so a retained command
        published while we are subscribed still shows as retained and is refused."""
        try:
            for f in filters:
                if self._v5:
                    await self._client.subscribe(f, options=SubscribeOptions(qos=qos, retainAsPublished=True))
                else:
                    await self._client.subscribe(f, qos=qos)
        except (aiomqtt.MqttError, OSError) as exc:
            raise _translate(exc, self.settings) from None

    async def unsubscribe(self, *filters: str) -> None:
        try:
            for f in filters:
                await self._client.unsubscribe(f)
        except (aiomqtt.MqttError, OSError) as exc:
            raise _translate(exc, self.settings) from None

    async def messages(self) -> AsyncIterator[Message]:
        """Incoming messages until the connection drops (then ``TransientError``)."""
        try:
            async for m in self._client.messages:
                payload = m.payload if isinstance(m.payload, bytes) else str(m.payload or "").encode()
                yield Message(m.topic.value, payload, bool(m.retain), m.qos)
        except (aiomqtt.MqttError, OSError) as exc:
            raise _translate(exc, self.settings) from None

    def abort(self) -> None:
        """Drop the connection without DISCONNECT, as a crash would: the broker sends the will."""
        sock = self._client._client.socket()  # noqa: SLF001  (the one place that reaches into paho)
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@contextlib.asynccontextmanager
async def connect(settings: BrokerSettings) -> AsyncIterator[MqttConnection]:
    """Connect with the gateway's identity, will and session; disconnect cleanly on exit."""
    v5 = settings.protocol == "5"
    will = None
    if settings.will_topic:
        will = aiomqtt.Will(settings.will_topic, OFFLINE, qos=QOS, retain=True)
    props = None
    if v5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0 if settings.clean else settings.session_expiry_s
    host = str(settings.socket) if settings.socket is not None else settings.host
    queue_full = _QueueFullLog()
    try:
        client = aiomqtt.Client(
            host, settings.port,
            username=settings.username, password=settings.password,
            identifier=settings.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=will,
            clean_session=None if v5 else settings.clean,
            clean_start=settings.clean if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            transport="unix" if settings.socket is not None else "tcp",
            keepalive=settings.keepalive_s,
            timeout=settings.timeout_s,
            properties=props,
            tls_context=_tls_context(settings) if settings.tls else None,
            logger=_client_logger(queue_full),
            max_queued_incoming_messages=MAX_QUEUED_INCOMING,  # a command flood must not eat the box's memory
            max_inflight_messages=200,
        )
        client.pending_calls_threshold = 10_000  # hundreds of devices publish at once by design
    except (ValueError, OSError, ssl.SSLError) as exc:
        raise _translate(exc, settings) from None
    try:
        await client.__aenter__()
    except (aiomqtt.MqttError, OSError, ssl.SSLError) as exc:
        raise _translate(exc, settings) from None
    conn = MqttConnection(client, settings, queue_full)
    try:
        yield conn
    finally:
        with contextlib.suppress(aiomqtt.MqttError, OSError, asyncio.TimeoutError):
            await client.__aexit__(None, None, None)
