"""One way to wait between retries, for every loop of the gateway.

The supervisor restarting a task, MQTT reconnecting, sync resending a batch,
a Modbus device or bus coming back, the BLE scanner: all wait the same way,
an exponential step capped at a maximum, with *equal jitter* (half the step
fixed, half random). The jitter keeps forty gateways of the park, or twenty
drivers on a bus that lost power together, from retrying in lockstep; the
fixed half keeps a wait from collapsing to nothing against a server that is
already failing.

Whether to retry at all is the caller's business and follows the rule of
:mod:`zaas_edge.errors`: a ``TransientError`` is retried quietly; a
``PermanentError`` (a refused login, an untrusted certificate) raises the
caller's alarm, because retrying alone will not fix it, and a long-running
service still retries on this same backoff, so the operator's fix (a new
password file, a renewed certificate) is picked up without a restart.
"""

from __future__ import annotations

__all__ = ["Backoff", "step"]

import random
from collections.abc import Callable

_MAX_DOUBLINGS = 32  # 2**32 times any initial step is past every configured maximum


def step(initial_s: float, max_s: float, failures: int, rng: Callable[[], float] | None = None) -> float:
    """The wait after ``failures`` failures in a row (0 for the first retry), jittered."""
    base = min(max_s, initial_s * 2 ** min(max(failures, 0), _MAX_DOUBLINGS))
    return base * (0.5 + (rng or random.random)() / 2)


class Backoff:
    """The failures-in-a-row count of one retry loop, and the next wait it gives."""

    __slots__ = ("initial_s", "max_s", "failures", "_rng")

    def __init__(self, initial_s: float, max_s: float, rng: Callable[[], float] | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.failures = 0
        self._rng = rng

    def next(self) -> float:
        """Count one more failure; the seconds to wait before the next try."""
        wait = step(self.initial_s, self.max_s, self.failures, self._rng)
        self.failures += 1
        return wait

    def reset(self) -> None:
        """A success (or a long enough healthy run): the next failure waits the initial step again."""
        self.failures = 0
