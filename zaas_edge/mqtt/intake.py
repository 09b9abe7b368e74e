"""The budget of command messages the gateway reads at all, pure: checked before any parsing.

Validation costs CPU, an acknowledgement costs a publish and a refusal an
event: a broker account flooding ``cmd/+/set`` must not buy any of them
beyond a budget. One token bucket covers every command topic together;
past it a message is dropped and counted, unparsed and unanswered (the
README says so: a command dropped at intake gets no acknowledgement). The
drops are reported in one log line per ``report_every_s`` at most.
"""

from __future__ import annotations

__all__ = ["CommandIntake"]

from dataclasses import dataclass, field

from zaas_edge.ratelimit import TokenBucket


@dataclass
class CommandIntake:
    rate_per_s: float
    burst: float
    report_every_s: float = 60.0
    dropped: int = field(default=0, init=False)  # since the service started
    _bucket: TokenBucket | None = field(default=None, init=False)
    _unreported: int = field(default=0, init=False)
    _reported_at: float | None = field(default=None, init=False)

    def admit(self, now: float) -> bool:
        """Whether to read one more command message at monotonic ``now``; False counts a drop."""
        if self._bucket is None:
            self._bucket = TokenBucket(self.rate_per_s, self.burst, now)
        if self._bucket.try_take(now):
            return True
        self.dropped += 1
        self._unreported += 1
        return False

    def report(self, now: float) -> int:
        """The drops to log now (0: nothing to say yet): the first at once, then at most one
        report per ``report_every_s`` with the count since the previous one."""
        if not self._unreported:
            return 0
        if self._reported_at is not None and now - self._reported_at < self.report_every_s:
            return 0
        n, self._unreported, self._reported_at = self._unreported, 0, now
        return n
