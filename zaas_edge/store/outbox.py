"""The outbox: what a service that consumes the store may do with it.

Sync, the aggregator and (next) the rules engine read the store's lanes after
a cursor of their own and acknowledge what they are done with; retention keeps
every row until each registered consumer has. This Protocol is that seam, and
the only one: a service holds an ``Outbox`` (the store's writer implements it,
running each call on its thread), never the ``Store`` itself, so what a
consumer can do to the store is written here, in one place, with types.
"""

from __future__ import annotations

__all__ = ["Outbox", "Position"]

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from zaas_edge.model import Lane, UploadRecord
from zaas_edge.store.records import Stored
from zaas_edge.wire.codec import WireRow


class Position(NamedTuple):
    """Where a consumer stands on a lane: its cursor and the lane's last seq."""

    cursor: int
    last_seq: int

    @property
    def backlog(self) -> int:
        return max(0, self.last_seq - self.cursor)


class Outbox(Protocol):
    """A consumer's view of the store (each call is one short transaction on the store's thread)."""

    async def register(self, consumer: str, lanes: Sequence[Lane]) -> None:
        """Make ``consumer`` hold back retention on ``lanes`` from now on (idempotent)."""

    async def stream_epoch(self) -> str:
        """The id of this store's seq stream (a new store file starts a new one)."""

    async def position(self, consumer: str, lane: Lane) -> Position:
        """``consumer``'s cursor on ``lane`` and the lane's last seq, read together."""

    async def read(self, lane: Lane, after_seq: int = 0, limit: int = 1000) -> list[Stored]:
        """Up to ``limit`` rows of ``lane`` after ``after_seq``, in seq order."""

    async def read_for_wire(self, lane: Lane, after_seq: int = 0, limit: int = 1000) -> list[Stored | WireRow]:
        """The rows of :meth:`read` as the wire codec encodes them (upload records as light tuples)."""

    async def commit_uploads(self, records: Sequence[UploadRecord], consumer: str, acked: int, state: str,
                             now_ns: int) -> None:
        """In one transaction: upload records in, ``consumer``'s reading cursor to ``acked``, its state saved."""

    async def consumer_state(self, consumer: str) -> str | None:
        """The state ``consumer`` saved with :meth:`commit_uploads` (None before the first)."""

    async def ack(self, consumer: str, lane: Lane, seq: int) -> int:
        """Move ``consumer``'s cursor on ``lane`` up to ``seq`` (never back); returns it."""

    async def expire(self, lane: Lane, before_ns: int) -> int:
        """Drop rows of ``lane`` older than ``before_ns`` that every consumer has acknowledged; returns how many."""
