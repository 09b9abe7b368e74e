"""sd_notify: tell systemd the daemon is ready, alive, reloading or stopping.

The protocol is one datagram of ``KEY=VALUE`` lines sent to the AF_UNIX socket
named by ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace),
so it is spoken here directly rather than through a dependency.

A notification is never worth crashing for: a failed send is counted and
logged once at warning, and every method is a no-op when the process was not
started by systemd (``NOTIFY_SOCKET`` unset), as under tests or a terminal.

Use from the runtime::

    notifier = Notifier()
    notifier.ready(status="3 drivers running")
    interval = notifier.watchdog_interval_s      # None: no watchdog wanted
    # pet at half the interval, and only while every critical loop is healthy
    notifier.watchdog()
    notifier.reloading(); ...; notifier.ready(status="reloaded")
    notifier.stopping()
"""

from __future__ import annotations

__all__ = ["Notifier"]

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Mapping

_log = logging.getLogger(__name__)

_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
# A STATUS= text longer than this is cut: systemd shows one line, and a
# datagram must stay well under the socket's buffer.
_MAX_VALUE = 1024


class Notifier:
    """The service manager's notification channel, read from the environment.

    ``environ`` defaults to ``os.environ`` and ``pid`` to ``os.getpid()``;
    both are parameters so tests (and a forked child) can say otherwise.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, *, pid: int | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _parse_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = _parse_watchdog(env, os.getpid() if pid is None else pid)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False
        #: Datagrams that could not be delivered (socket gone, queue full).
        self.send_failures = 0
        #: Datagrams delivered.
        self.sent = 0

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens (``NOTIFY_SOCKET`` was usable)."""
        return self._address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """The watchdog timeout systemd enforces, in seconds; None when there is none.

        ``WATCHDOG_USEC`` counts only when ``WATCHDOG_PID`` is unset or names
        this process (it is inherited by children, which must not pet for us).
        Pet at half this interval.
        """
        return None if self._watchdog_usec is None else self._watchdog_usec / 1e6

    # -- the messages --------------------------------------------------------------

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is complete: ``READY=1`` and an optional status line."""
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status``."""
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        """Keep-alive: ``WATCHDOG=1``. Send only while the daemon is really healthy."""
        return self.notify(WATCHDOG=1)

    def stopping(self) -> bool:
        """Shutdown has begun: ``STOPPING=1``."""
        return self.notify(STOPPING=1)

    def reloading(self) -> bool:
        """A reload has begun: ``RELOADING=1`` with ``MONOTONIC_USEC``.

        systemd 253 and later match the reload to this timestamp; older ones
        ignore the extra field. Call :meth:`ready` when the reload is done.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(RELOADING=1, MONOTONIC_USEC=usec)

    def notify(self, **fields: object) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines, in the order given.

        Keys are upper-case names (``READY``, ``STATUS``, ``ERRNO``...); values
        are turned into one line (booleans as 1/0). Returns True when the
        datagram was delivered, False when disabled or on failure; never raises.
        """
        if self._address is None or not fields:
            return False
        lines = []
        for key, value in fields.items():
            if not _KEY.match(key):
                raise ValueError(f"sd_notify field name must be upper-case letters, digits, _: {key!r}")
            lines.append(f"{key}={_one_line(value)}")
        return self._send(("\n".join(lines) + "\n").encode("utf-8", "replace"))

    def close(self) -> None:
        """Close the socket (it is reopened by the next notification)."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    # -- transport -----------------------------------------------------------------

    def _send(self, payload: bytes) -> bool:
        with self._lock:
            try:
                if self._sock is None:
                    # Non-blocking: called from the event loop; a full queue is
                    # a failed notification, not a stalled daemon.
                    self._sock = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                    )
                self._sock.sendto(payload, self._address)
            except OSError as exc:
                self.send_failures += 1
                if not self._warned:
                    self._warned = True
                    _log.warning(
                        "cannot notify the service manager: %s (further failures are only counted)",
                        exc, extra={"fields": {"socket": _printable(self._address)}},
                    )
                return False
            self.sent += 1
            return True


def _parse_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        # Abstract namespace: a leading NUL instead of the '@', no terminator.
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    # e.g. vsock:CID:PORT (systemd in a VM): not a socket this code speaks.
    _log.warning("NOTIFY_SOCKET %r is not an AF_UNIX address: notifications disabled", value)
    return None


def _parse_watchdog(env: Mapping[str, str], pid: int) -> int | None:
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    wd_pid = env.get("WATCHDOG_PID")
    if wd_pid is not None:
        try:
            if int(wd_pid) != pid:
                return None
        except ValueError:
            return None
    return usec


def _one_line(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value).replace("\r", " ").replace("\n", " ")
    return text[:_MAX_VALUE]


def _printable(address: str | bytes | None) -> str:
    if isinstance(address, bytes):
        return "@" + address[1:].decode(errors="replace")
    return str(address)
