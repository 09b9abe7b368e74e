"""A token bucket, pure: the caller passes monotonic time.

One bucket serves both kinds of limit the gateway has: refusing what comes
too fast (MQTT commands per target, ``try_take``) and pacing what goes out
(the sync upload cap in bytes per second, ``debit``).
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


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
