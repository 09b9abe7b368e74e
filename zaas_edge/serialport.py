"""A serial line read without a thread: the one module that wraps pyserial (M-Bus and TIC use it).

Reads use ``loop.add_reader`` on the tty's descriptor (pyserial opens it
non-blocking), so waiting for bytes is cancellable and costs no thread;
writes go through one executor thread per line, because a write to a USB
adapter whose buffer is full may block. A line that fails (a USB adapter
unplugged: ``EIO``, or end of file) raises :class:`PortError` at the next
read or write, for the driver to reopen it on its backoff. (Modbus RTU goes
through pymodbus's own serial transport.)

A pseudo-terminal has no wire, hence no parity or character size, and some
kernels refuse ``PARENB``/``CS7`` on one: a pty (the simulators' lines) is
opened 8N1 whatever the framing asked for, and the codecs above cope (the
TIC decoder clears bit 7).

**Parity errors.** Linux reports a bad character in-band only with
``PARMRK``, which pyserial does not set. With parity on, pyserial sets
``INPCK`` and the kernel delivers a character received with a parity or
framing error (or a break) as a NUL byte: :attr:`SerialLine.nul_bytes`
counts them for protocols whose data never holds NUL.
"""

from __future__ import annotations

__all__ = ["PortError", "SerialLine", "Parity", "is_pty"]

import asyncio
import os
import stat
import termios
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from zaas_edge.aio import wait_for
from zaas_edge.errors import TransientError

Parity = Literal["N", "E", "O"]


class PortError(TransientError):
    """The serial port itself failed (missing, unplugged, refused): not the device's silence."""


def is_pty(path: str) -> bool:
    """Unix98 pty slaves have majors 136 to 143 (the simulators' lines)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and 136 <= os.major(st.st_rdev) <= 143


class SerialLine:
    """One open serial port; ``what`` names the protocol in messages ("M-Bus port /dev/ttyUSB0 ...")."""

    def __init__(self, path: str, baudrate: int, *, bytesize: Literal[7, 8] = 8, parity: Parity = "N",
                 stopbits: Literal[1, 2] = 1, what: str = "serial") -> None:
        self.path = path
        self.baudrate = baudrate
        self.bytesize = bytesize
        self.parity = parity
        self.stopbits = stopbits
        self.what = what
        self.nul_bytes = 0
        self._serial: Any = None
        self._fd = -1
        self._buf = bytearray()
        self._ready = asyncio.Event()
        self._error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    async def open(self) -> SerialLine:
        import serial  # pyserial: imported here so the CLI starts fast

        def make() -> Any:
            if is_pty(self.path):
                return serial.Serial(self.path, self.baudrate, timeout=0, write_timeout=5)
            return serial.Serial(self.path, self.baudrate, bytesize=self.bytesize, parity=self.parity,
                                 stopbits=self.stopbits, timeout=0, write_timeout=5)

        loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"serial-{os.path.basename(self.path)}")
        try:
            self._serial = await loop.run_in_executor(self._executor, make)
        except (serial.SerialException, OSError, ValueError, termios.error) as exc:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise PortError(f"cannot open {self.what} port {self.path}: {_why(exc)} "
                            "(check the device path and that the user is in group dialout)") from None
        self._loop = loop
        self._fd = self._serial.fileno()
        os.set_blocking(self._fd, False)
        loop.add_reader(self._fd, self._on_readable)
        return self

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

    def _check(self) -> None:
        if self._serial is None:
            raise PortError(f"{self.what} port {self.path} is not open")
        if self._error is not None:
            raise PortError(f"{self.what} port {self.path} failed: {self._error}")

    async def read(self, timeout: float) -> bytes:
        """The bytes received so far, waiting up to ``timeout`` s for some; ``b""`` when none came.

        Bytes received before the line failed are handed over first; the failure comes after.
        """
        if self._serial is None:
            self._check()
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
        self._check()
        return b""

    async def write(self, data: bytes) -> None:
        self._check()
        import serial

        assert self._executor is not None
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._serial.write, data)
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"cannot write to {self.what} port {self.path}: {_why(exc)}") from None

    def discard_input(self) -> None:
        """Drop what was received and not yet read (before a request, after a speed change)."""
        self._buf.clear()
        self._ready.clear()
        if self._serial is not None and self._error is None:
            try:
                self._serial.reset_input_buffer()
            except Exception:  # noqa: BLE001 - a pty may refuse tcflush; nothing to discard then
                pass

    async def set_speed(self, baudrate: int) -> None:
        """Change the line speed (speed detection) and drop what was received at the old one."""
        self._check()
        try:
            self._serial.baudrate = baudrate
        except (OSError, ValueError, termios.error) as exc:
            raise PortError(f"cannot set {self.what} port {self.path} to {baudrate} Bd: {_why(exc)}") from None
        self.baudrate = baudrate
        self.discard_input()

    async def close(self) -> None:
        ser, self._serial = self._serial, None
        if ser is not None:
            if self._loop is not None and self._error is None and self._fd >= 0:
                self._loop.remove_reader(self._fd)
            try:
                if self._executor is not None:
                    await asyncio.get_running_loop().run_in_executor(self._executor, ser.close)
                else:
                    ser.close()
            except Exception:  # noqa: BLE001 - closing a vanished adapter may fail; it is gone anyway
                pass
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


def _why(exc: BaseException) -> str:
    """pyserial wraps OSError text in its own; keep one short line."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
