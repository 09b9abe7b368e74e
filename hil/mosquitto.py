"""A real mosquitto broker on 127.0.0.1 for the demo, the benchmarks and the tests.

``Mosquitto(dir)`` writes a configuration in ``dir``, picks a free port (bind
port 0, read it back), starts ``/usr/sbin/mosquitto`` and waits until it
accepts MQTT connections (a CONNECT answered by a CONNACK, not a sleep). It can
be stopped and started again on the same port, killed, and given a password
file, an ACL, and a TLS listener (``TlsFiles``) instead of the plain one.
Persistence is off: a restart loses every retained message, which is what the
reconnection tests want to see recovered.

Nothing here needs pytest: ``make demo`` and ``bench/`` run without the test
extras. Without the mosquitto binary, :class:`Mosquitto` raises
:class:`MosquittoMissing` (check :func:`available` first); the tests' thin
layer in ``tests/mosquitto.py`` turns that into a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hil.procs import kill_process, stop_process

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"

# MQTT 3.1.1 CONNECT with client id "probe", clean session, keepalive 10.
_PROBE = bytes([0x10, 17, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 10, 0, 5]) + b"probe"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class TlsFiles:
    """A TLS listener: the broker's chain, the CA it trusts for clients, and what probes and
    subscribers present (``client_*``) when ``require_certificate`` is set."""

    ca_file: Path  # CA of the client certificates the broker accepts; also what our subscribers trust
    cert_file: Path
    key_file: Path
    require_certificate: bool = False
    client_cert: Path | None = None
    client_key: Path | None = None

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if self.client_cert is not None:
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


def available() -> bool:
    return os.access(MOSQUITTO, os.X_OK)


class MosquittoMissing(RuntimeError):
    """No mosquitto binary on this machine."""

    def __init__(self) -> None:
        super().__init__(f"mosquitto not found at {MOSQUITTO}: apt-get install -y mosquitto")


class Mosquitto:
    def __init__(self, directory: Path, *, port: int | None = None, users: dict[str, str] | None = None,
                 acl: str | None = None, unix_socket: Path | None = None, tls: TlsFiles | None = None,
                 new_session: bool = False) -> None:
        """``new_session``: the broker in a session of its own, so a Ctrl-C in the terminal does
        not reach it (the demo stops it itself, after the daemon has said goodbye on it)."""
        if not available():
            raise MosquittoMissing()
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.users = users
        self.acl = acl
        self.unix_socket = unix_socket
        self.tls = tls
        self.new_session = new_session
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "mosquitto.log"
        self.conf_path = self.dir / "mosquitto.conf"
        self._write_config()

    def _write_config(self) -> None:
        lines = [f"listener {self.port} {self.host}", "persistence false", "log_dest stdout",
                 "log_type error", "log_type warning", "log_type notice", "log_type information",
                 "connection_messages true"]
        if self.tls is not None:
            lines += [f"cafile {self.tls.ca_file}", f"certfile {self.tls.cert_file}",
                      f"keyfile {self.tls.key_file}",
                      f"require_certificate {'true' if self.tls.require_certificate else 'false'}"]
        if os.geteuid() == 0:
            lines.insert(0, "user root")  # otherwise it drops to a user that cannot read tmp files
        if self.unix_socket is not None:
            lines += [f"listener 0 {self.unix_socket}"]
        if self.users is not None:
            pw = self.dir / "passwd"
            pw.unlink(missing_ok=True)
            first = True
            for user, password in self.users.items():
                args = [MOSQUITTO_PASSWD, "-b"] + (["-c"] if first else []) + [str(pw), user, password]
                subprocess.run(args, check=True, capture_output=True)
                first = False
            pw.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines += ["allow_anonymous true"]
        if self.acl is not None:
            acl = self.dir / "acl"
            acl.write_text(self.acl)
            acl.chmod(0o600)
            lines += [f"acl_file {acl}"]
        # "per_listener_settings false" (the default) makes the auth lines apply to every listener.
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> Mosquitto:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf_path)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=self.new_session)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Until a CONNECT gets a CONNACK (any return code: the broker is up)."""
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0) as raw:
                    s = raw
                    if self.tls is not None:
                        probe = self.tls.client_context()
                        probe.check_hostname = False  # "is it up", not "is it who it says":
                        probe.verify_mode = ssl.CERT_NONE  # tests also serve wrong certificates
                        s = probe.wrap_socket(raw, server_hostname=self.host)
                    s.sendall(_PROBE)
                    if s.recv(4)[:1] == b"\x20":
                        return
            except OSError:  # ssl.SSLError included: a listener not yet up may reset the handshake
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not accept connections on {self.port}:\n{self.log()}")
            time.sleep(delay)  # between connection attempts only
            delay = min(delay * 2, 0.1)

    def client_tls(self) -> ssl.SSLContext | None:
        """The TLS context a subscriber needs for this broker (None for a plain listener)."""
        return self.tls.client_context() if self.tls is not None else None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 5)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            kill_process(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Collector:
    """A subscriber (a paho-compatible aiomqtt client) that records what it receives.

    ``async with Collector(broker, "zaas/#") as c: await c.wait_for(topic, predicate)``.
    """

    def __init__(self, broker: Mosquitto, *filters: str, username: str | None = None,
                 password: str | None = None, client_id: str | None = None) -> None:
        self.broker = broker
        self.filters = filters or ("#",)
        self.username, self.password, self.client_id = username, password, client_id
        self.messages: list[tuple[str, bytes, bool]] = []
        self.last: dict[str, bytes] = {}
        self._changed = None
        self._task = None
        self.client = None

    async def __aenter__(self) -> Collector:
        import asyncio

        import aiomqtt

        self._changed = asyncio.Condition()
        self.client = aiomqtt.Client(self.broker.host, self.broker.port, username=self.username,
                                     password=self.password, identifier=self.client_id,
                                     protocol=aiomqtt.ProtocolVersion.V5, tls_context=self.broker.client_tls())
        await self.client.__aenter__()
        for f in self.filters:
            await self.client.subscribe(f, qos=1)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        async for m in self.client.messages:
            payload = m.payload if isinstance(m.payload, bytes) else str(m.payload or "").encode()
            self.messages.append((m.topic.value, payload, bool(m.retain)))
            self.last[m.topic.value] = payload
            async with self._changed:
                self._changed.notify_all()

    async def wait_for(self, topic: str, predicate=lambda p: True, timeout: float = 15.0) -> bytes:
        """The first payload (received so far or to come) on ``topic`` for which ``predicate`` holds."""
        import asyncio

        async def check() -> bytes:
            async with self._changed:
                seen = 0
                while True:
                    for t, p, _ in self.messages[seen:]:
                        if t == topic and predicate(p):
                            return p
                    seen = len(self.messages)
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(check(), timeout)
        except TimeoutError:
            raise AssertionError(f"nothing matching on {topic} within {timeout}s; got "
                                 f"{[(t, p[:200]) for t, p, _ in self.messages if t == topic][-5:]}") from None

    async def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        await self.client.publish(topic, payload, qos=1, retain=retain)

    async def __aexit__(self, *exc: object) -> None:
        import asyncio
        import contextlib

        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        with contextlib.suppress(Exception):
            await self.client.__aexit__(None, None, None)
