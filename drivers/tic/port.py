"""The TIC serial port: pyserial at 1200 or 9600 Bd, 7E1, read without a thread.

The only module of the TIC driver that imports pyserial. Reads use
``loop.add_reader`` on the tty's descriptor (pyserial opens it non-blocking),
so waiting for bytes is cancellable and costs no thread; a port that fails
(a USB dongle unplugged: ``EIO``, or end of file) raises :class:`PortError`
at the next :meth:`TicPort.read`, for the driver to reopen it on its backoff.

**Parity and framing errors.** Linux reports a bad character in-band only
with ``PARMRK``, which pyserial does not set. With 7E1 pyserial sets
``INPCK`` and ``ISTRIP``, so the kernel delivers a character received with a
parity or framing error (or a break) as a NUL byte; a port read 8N1 (a
dongle set up by another tool, a pty) delivers the parity bit as bit 7
instead. :attr:`TicPort.nul_bytes` counts the first; the decoder's
``parity_stripped`` counter the second. The driver sums them as
``parity_errors``. TIC data is printable ASCII, so neither happens on a clean
line.
"""

from __future__ import annotations

__all__ = ["PortError", "TicPort", "is_pty", "detect_speed"]

import asyncio
import os
import stat
import termios
import time
from collections.abc import Callable
from typing import Any

from zaas_edge.drivers.tic.codec import Mode, detect_mode

from zaas_edge.aio import wait_for
from zaas_edge.errors import TransientError


class PortError(TransientError):
    """The serial port itself failed (missing, unplugged, refused): not the meter's silence."""


def is_pty(path: str) -> bool:
    """Unix98 pty slaves have majors 136 to 143 (the simulated meter's line)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and 136 <= os.major(st.st_rdev) <= 143


class TicPort:
    """One open TIC line; :meth:`read` gives bytes as they come."""

    def __init__(self, path: str, baudrate: int) -> None:
        self.path = path
        self.baudrate = baudrate
        self.nul_bytes = 0
        self._serial: Any = None
        self._fd = -1
        self._buf = bytearray()
        self._ready = asyncio.Event()
        self._error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    async def open(cls, path: str, baudrate: int) -> TicPort:
        port = cls(path, baudrate)
        await port._open()
        return port

    async def _open(self) -> None:
        import serial  # pyserial: imported here so the CLI starts fast

        def make() -> Any:
            try:
                return serial.Serial(self.path, self.baudrate, bytesize=serial.SEVENBITS, parity=serial.PARITY_EVEN,
                                     stopbits=serial.STOPBITS_ONE, timeout=0)
            except (serial.SerialException, termios.error):
                if not is_pty(self.path):
                    raise
                # Some kernels refuse PARENB/CS7 on a pty (it has no wire, hence no parity):
                # the simulated meter's line is read 8N1, the decoder clears bit 7 anyway.
                return serial.Serial(self.path, self.baudrate, timeout=0)

        loop = asyncio.get_running_loop()
        try:
            self._serial = await asyncio.to_thread(make)
        except (serial.SerialException, OSError, ValueError, termios.error) as exc:
            raise PortError(f"cannot open TIC port {self.path}: {_why(exc)} "
                            "(check the device path and that the user is in group dialout)") from None
        self._loop = loop
        self._fd = self._serial.fileno()
        os.set_blocking(self._fd, False)
        loop.add_reader(self._fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(_why(exc))
            return
        if not data:
            self._fail("end of file (device gone?)")
            return
        self.nul_bytes += data.count(0)
        self._buf += data
        self._ready.set()

    def _fail(self, why: str) -> None:
        self._error = why
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
        self._ready.set()

    async def read(self, timeout: float) -> bytes:
        """The bytes received so far, waiting up to ``timeout`` s for some; ``b""`` when none came."""
        if self._serial is None:
            raise PortError(f"TIC port {self.path} is not open")
        if not self._buf and self._error is None:
            try:
                await wait_for(self._ready.wait(), max(0.0, timeout))
            except TimeoutError:
                return b""
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            self._ready.clear()
            return data
        raise PortError(f"TIC port {self.path} failed: {self._error}")

    async def set_speed(self, baudrate: int) -> None:
        """Change the line speed (auto-detection) and drop what was received at the old one."""
        if self._serial is None:
            raise PortError(f"TIC port {self.path} is not open")
        try:
            self._serial.baudrate = baudrate
        except (OSError, ValueError, termios.error) as exc:
            raise PortError(f"cannot set TIC port {self.path} to {baudrate} Bd: {_why(exc)}") from None
        self.baudrate = baudrate
        self._buf.clear()
        self._ready.clear()

    async def close(self) -> None:
        ser, self._serial = self._serial, None
        if ser is None:
            return
        if self._loop is not None and self._error is None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
        try:
            await asyncio.to_thread(ser.close)
        except Exception:  # noqa: BLE001 - closing a vanished dongle may fail; it is gone anyway
            pass


async def detect_speed(port: TicPort, listen_s: float, tick: Callable[[], None] = lambda: None,
                       clock: Callable[[], float] = time.monotonic) -> tuple[Mode, bytes] | None:
    """Mode auto-detection: listen ``listen_s`` at 9600 Bd, then at 1200, and keep the speed at which
    groups pass their checksums. Returns the mode and the bytes heard at its speed (to decode, not
    to lose a frame), or ``None``. At the wrong speed a real line gives garbage that never passes;
    a pty (no wire, no speed) passes both, and a historic stream heard "at 9600" moves on at once."""
    for mode in (Mode.STANDARD, Mode.HISTORIC):
        if port.baudrate != mode.value:
            await port.set_speed(mode.value)
        buf = bytearray()
        deadline = clock() + listen_s
        while (left := deadline - clock()) > 0:
            buf += await port.read(min(left, 1.0))
            tick()
            found = detect_mode(bytes(buf))
            if found is mode:
                return mode, bytes(buf)
            if found is not None:
                break
    return None


def _why(exc: BaseException) -> str:
    """pyserial wraps OSError text in its own; keep one short line."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
