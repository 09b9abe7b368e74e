"""The TIC line: 1200 or 9600 Bd, 7E1, and the mode detection that picks the speed.

The port is a :class:`zaas_edge.serialport.SerialLine` (read without a
thread; a failure raises :class:`PortError` at the next read, for the driver
to reopen it on its backoff).

**Parity and framing errors.** With 7E1 pyserial sets ``INPCK`` and
``ISTRIP``, so the kernel delivers a character received with a parity or
framing error (or a break) as a NUL byte; a port read 8N1 (a dongle set up
by another tool, a pty) delivers the parity bit as bit 7 instead.
:attr:`SerialLine.nul_bytes` counts the first; the decoder's
``parity_stripped`` counter the second. The driver sums them as
``parity_errors``. TIC data is printable ASCII, so neither happens on a clean
line.
"""

from __future__ import annotations

__all__ = ["PortError", "open_tic_port", "detect_speed"]

import time
from collections.abc import Callable

from zaas_edge.drivers.tic.codec import Mode, detect_mode

from zaas_edge.serialport import PortError, SerialLine


async def open_tic_port(path: str, baudrate: int) -> SerialLine:
    """Open a TIC line in 7E1 at ``baudrate``."""
    return await SerialLine(path, baudrate, bytesize=7, parity="E", what="TIC").open()


async def detect_speed(port: SerialLine, listen_s: float, tick: Callable[[], None] = lambda: None,
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
