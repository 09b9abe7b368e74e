"""The clocks of a box without a real-time clock.

Scheduling uses the monotonic clock only. Wall time is stamped on every value
with whether the kernel considered it synchronised at that moment (the same
test ``timedatectl`` uses: adjtimex reporting TIME_ERROR means unsynchronised).
"""

from __future__ import annotations

__all__ = ["Clock", "SystemClock", "FakeClock", "read_boot_id", "kernel_clock_synced"]

import ctypes
import ctypes.util
import functools
import time
import uuid
from pathlib import Path
from typing import Protocol

from zaas_edge.model import Stamp

_TIME_ERROR = 5
_SYNC_RECHECK_NS = 10_000_000_000


def read_boot_id() -> str:
    """The kernel's id of this boot; a fresh random one where /proc does not say."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return str(uuid.uuid4())


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # Loaded once: find_library runs ldconfig in a subprocess.
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def kernel_clock_synced() -> bool:
    """Whether the kernel says the wall clock is synchronised (NTP or PTP)."""
    libc = _libc()
    if libc is None:
        return False
    try:
        buf = ctypes.create_string_buffer(512)  # struct timex, modes=0: read only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return False
    return state >= 0 and state != _TIME_ERROR


class Clock(Protocol):
    def now(self) -> Stamp: ...

    def monotonic_ns(self) -> int: ...


class SystemClock:
    """The real clocks. The synchronised flag is re-read at most every 10 s."""

    def __init__(self, assume_synced: bool | None = None) -> None:
        self.boot_id = read_boot_id()
        self._assume = assume_synced
        self._synced = False
        self._checked_ns = -_SYNC_RECHECK_NS * 2

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def synced(self) -> bool:
        if self._assume is not None:
            return self._assume
        mono = time.monotonic_ns()
        if mono - self._checked_ns >= _SYNC_RECHECK_NS:
            self._synced = kernel_clock_synced()
            self._checked_ns = mono
        return self._synced

    def now(self) -> Stamp:
        return Stamp(time.time_ns(), time.monotonic_ns(), self.boot_id, self.synced())


class FakeClock:
    """A clock for tests: wall time can jump, synchronisation can be toggled."""

    def __init__(self, wall_ns: int = 1_700_000_000_000_000_000, mono_ns: int = 1_000_000_000,
                 boot_id: str = "00000000-0000-4000-8000-000000000000", synced: bool = True) -> None:
        self.wall_ns = wall_ns
        self.mono_ns = mono_ns
        self.boot_id = boot_id
        self.is_synced = synced

    def monotonic_ns(self) -> int:
        return self.mono_ns

    def advance(self, seconds: float) -> None:
        step = int(seconds * 1e9)
        self.wall_ns += step
        self.mono_ns += step

    def jump_wall(self, seconds: float) -> None:
        self.wall_ns += int(seconds * 1e9)

    def now(self) -> Stamp:
        return Stamp(self.wall_ns, self.mono_ns, self.boot_id, self.is_synced)
