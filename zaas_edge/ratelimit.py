"""Rate limits, pure: the caller passes monotonic time.

One token bucket serves both kinds of limit the gateway has: refusing what
comes too fast (MQTT commands per target, ``try_take``) and pacing what goes
out (the sync upload cap in bytes per second, ``debit``). One pacer keeps a
noisy source from filling the journal: a kind of fault is reported at most
once per interval, with the count of what was held back (LoRa and BLE
faults, a Modbus device answering garbage, the MQTT client's full queue).
"""

from __future__ import annotations

__all__ = ["TokenBucket", "Pacer", "RateLimitedLog"]

import logging
import time
from collections.abc import Callable
from typing import Any


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.at = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = max(self.at, now)

    def try_take(self, now: float, n: float = 1.0) -> bool:
        """Take ``n`` tokens if there are that many; False (nothing taken) otherwise."""
        self._refill(now)
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def debit(self, n: float, now: float) -> float:
        """Take ``n`` tokens, going into debt if needed; the seconds to wait until it is paid."""
        self._refill(now)
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class Pacer:
    """At most one report per ``every`` seconds for each kind; counts what it holds back.

    Kinds are remembered up to ``max_kinds`` (a kind can name a forwarder or a
    device, which an attacker can invent): past it the memory starts again.
    """

    def __init__(self, every: float = 60.0, max_kinds: int = 4096) -> None:
        self.every = every
        self.max_kinds = max_kinds
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def admit(self, kind: str, now: float) -> int | None:
        """``None`` to hold this one back, else how many of ``kind`` were held back since its last report."""
        last = self._last.get(kind)
        if last is not None and now - last < self.every:
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        if last is None and len(self._last) >= self.max_kinds:
            self._last.clear()
            self._held.clear()
        self._last[kind] = now
        return self._held.pop(kind, 0)


class RateLimitedLog:
    """Log a kind of fault at most once per ``every`` seconds, saying how many were not logged."""

    def __init__(self, log: logging.Logger, every: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 max_kinds: int = 4096) -> None:
        self._log = log
        self._clock = clock
        self._pacer = Pacer(every, max_kinds)

    def warning(self, kind: str, msg: str, **fields: Any) -> bool:
        return self.log(logging.WARNING, kind, msg, **fields)

    def info(self, kind: str, msg: str, **fields: Any) -> bool:
        return self.log(logging.INFO, kind, msg, **fields)

    def log(self, level: int, kind: str, msg: str, **fields: Any) -> bool:
        """Log ``msg`` at ``level`` unless ``kind`` was logged less than ``every`` seconds ago; whether it was."""
        held = self._pacer.admit(kind, self._clock())
        if held is None:
            return False
        more = f" ({held} more since the last report)" if held else ""
        self._log.log(level, "%s%s", msg, more, extra={"fields": {"fault": kind, **fields}})
        return True
