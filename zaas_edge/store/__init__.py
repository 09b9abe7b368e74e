"""The SQLite outbox every reading, event and alarm goes through.

- :class:`Store`: one connection; lanes, cursors, stats, export (readers open
  their own, ``readonly=True``).
- :class:`Writer`: the daemon's only writer, batched and asynchronous, with a
  memory ring while the storage is unavailable.
- :func:`enforce_retention`: the size cap and its drop order.
"""

from zaas_edge.store.records import Commit, LaneStats, Retention, Stored, StoreStats, WriterStats
from zaas_edge.store.retention import GAP_KIND
from zaas_edge.store.retention import enforce as enforce_retention
from zaas_edge.store.schema import MIGRATIONS, SCHEMA_VERSION, connect, migrate
from zaas_edge.store.store import Store
from zaas_edge.store.writer import DEGRADED_ALARM, RETENTION_BLOCKED_ALARM, Writer

__all__ = [
    "Store",
    "Writer",
    "Commit",
    "Stored",
    "Retention",
    "LaneStats",
    "StoreStats",
    "WriterStats",
    "enforce_retention",
    "GAP_KIND",
    "DEGRADED_ALARM",
    "RETENTION_BLOCKED_ALARM",
    "SCHEMA_VERSION",
    "MIGRATIONS",
    "migrate",
    "connect",
]
