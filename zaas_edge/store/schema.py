"""The store's SQLite schema, its migrations, and the error boundary.

The schema version lives in ``PRAGMA user_version``. ``MIGRATIONS[n]`` takes
a database at version ``n`` to ``n + 1`` inside one transaction (the version
bump included), so an interrupted upgrade leaves the previous version intact.
A database newer than this software is refused rather than guessed at.

Every sqlite3 error leaving this package goes through :func:`translate`, so
callers see :class:`StoreUnavailable` (disk full, read-only, I/O, cannot open,
locked: worth retrying) or :class:`PermanentError` (not worth retrying as is).
"""

from __future__ import annotations

__all__ = [
    "SCHEMA_VERSION",
    "MIGRATIONS",
    "QUALITY_CODES",
    "QUALITY_NAMES",
    "LANE_TABLES",
    "connect",
    "migrate",
    "translate",
    "guarded",
]

import contextlib
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from zaas_edge.errors import PermanentError, StoreUnavailable, ZaasError
from zaas_edge.model import Lane, Quality

BUSY_TIMEOUT_MS = 5000

QUALITY_CODES = {Quality.OK: 0, Quality.STALE: 1, Quality.ERROR: 2, Quality.ESTIMATED: 3}
QUALITY_NAMES = {v: k for k, v in QUALITY_CODES.items()}

LANE_TABLES = {Lane.READING: "reading", Lane.EVENT: "event", Lane.ALARM: "alarm", Lane.UPLOAD: "upload"}

# SQLite result codes (primary code, low byte) that mean "the storage is not
# usable right now": the writer degrades to its memory ring and retries.
_UNAVAILABLE = {
    "SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN",
    "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_PERM", "SQLITE_NOLFS", "SQLITE_PROTOCOL",
}
_PRIMARY = {13: "SQLITE_FULL", 8: "SQLITE_READONLY", 10: "SQLITE_IOERR", 14: "SQLITE_CANTOPEN",
            5: "SQLITE_BUSY", 6: "SQLITE_LOCKED", 3: "SQLITE_PERM", 11: "SQLITE_CORRUPT",
            26: "SQLITE_NOTADB"}

_HINTS = {
    "SQLITE_FULL": "the file system (or the database's page limit) is full",
    "SQLITE_READONLY": "the database or its file system is read-only",
    "SQLITE_IOERR": "an I/O error (failing SD card?)",
    "SQLITE_CANTOPEN": "cannot open the file (does the state directory exist and is it writable?)",
    "SQLITE_BUSY": "locked by another process for longer than the busy timeout",
    "SQLITE_LOCKED": "locked by another connection",
    "SQLITE_PERM": "permission denied",
    "SQLITE_CORRUPT": "the database file is corrupt: move it aside so a fresh one is created",
    "SQLITE_NOTADB": "the file is not a SQLite database: move it aside",
}


def _code_name(exc: sqlite3.Error) -> str:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in _PRIMARY:
        return _PRIMARY[code & 0xFF]
    msg = str(exc).lower()
    if "locked" in msg:
        return "SQLITE_BUSY"
    if "unable to open" in msg:
        return "SQLITE_CANTOPEN"
    if "readonly" in msg or "read-only" in msg:
        return "SQLITE_READONLY"
    if "disk is full" in msg or "database or disk is full" in msg:
        return "SQLITE_FULL"
    return getattr(exc, "sqlite_errorname", None) or type(exc).__name__


def translate(exc: BaseException, path: Path | str, doing: str) -> ZaasError:
    """The gateway's error for a sqlite3 or OS error met while ``doing`` on ``path``.

    The returned error carries ``code`` (``SQLITE_FULL``...) so the writer can
    tell a full disk from an I/O error without parsing messages.
    """
    if isinstance(exc, sqlite3.Error):
        code = _code_name(exc)
        hint = _HINTS.get(code, "")
        text = f"store {path}: {doing} failed: {exc} [{code}]" + (f": {hint}" if hint else "")
        err: ZaasError = StoreUnavailable(text) if code in _UNAVAILABLE else PermanentError(text)
    elif isinstance(exc, OSError):
        code = "OSERROR"
        err = StoreUnavailable(f"store {path}: {doing} failed: {exc.strerror or exc}")
    else:
        return exc if isinstance(exc, ZaasError) else PermanentError(f"store {path}: {doing} failed: {exc}")
    err.code = code  # type: ignore[attr-defined]
    return err


@contextlib.contextmanager
def guarded(path: Path | str, doing: str) -> Iterator[None]:
    """Translate sqlite3/OS errors raised inside the block (the store boundary)."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise translate(exc, path, doing) from exc


# The writer's page cache. SQLite's default (2 MB) fills up within minutes and stays for the
# daemon's life, 4 % of a Pi's share for the daemon, and buys nothing here: the writer appends
# to the right edge of a few B-trees, and what it reads back (retention's oldest rows, an
# export) is read once, from the kernel's page cache. 512 kB holds every page an append touches.
CACHE_KIB = 512


def connect(path: Path, *, synchronous: str = "full", readonly: bool = False) -> sqlite3.Connection:
    """Open ``path`` with the store's pragmas (raw sqlite3 errors: callers guard).

    The writer's connection runs in autocommit mode and opens its transactions
    explicitly (``BEGIN IMMEDIATE``), so one flush is exactly one transaction.
    The parent directory is never created: a missing state directory is a
    deployment fault (unmounted partition, no ``StateDirectory=``) to report,
    not to paper over by writing to the root file system.
    """
    if readonly:
        uri = f"{Path(path).absolute().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return conn
    if not Path(path).parent.is_dir():
        raise sqlite3.OperationalError(f"unable to open database file (no directory {Path(path).parent})")
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
            # Only possible before the first table exists: must precede migration 1.
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch to WAL journal (got {mode})")
        conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys=OFF")  # lookups are ours; checks would cost per row
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    except BaseException:
        conn.close()
        raise
    return conn


# ---------------------------------------------------------------- migrations

def _v0_to_v1(conn: sqlite3.Connection) -> None:
    """The first schema: lookups, the three lanes, per-lane counters and cursors."""
    for sql in (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        # Readings name a point and a boot by small integer ids so a row is ~40 bytes.
        "CREATE TABLE point (id INTEGER PRIMARY KEY, key TEXT NOT NULL, unit TEXT NOT NULL, UNIQUE (key, unit))",
        "CREATE TABLE boot (id INTEGER PRIMARY KEY, boot_id TEXT NOT NULL UNIQUE)",
        # value may be NULL: SQLite stores NaN as NULL, read back as NaN.
        "CREATE TABLE reading (seq INTEGER PRIMARY KEY, point_id INTEGER NOT NULL, value REAL,"
        " quality INTEGER NOT NULL, wall_ns INTEGER NOT NULL, mono_ns INTEGER NOT NULL,"
        " boot INTEGER NOT NULL, synced INTEGER NOT NULL)",
        "CREATE TABLE event (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, severity TEXT NOT NULL,"
        " source TEXT NOT NULL, text TEXT NOT NULL, data TEXT NOT NULL, wall_ns INTEGER NOT NULL,"
        " mono_ns INTEGER NOT NULL, boot INTEGER NOT NULL, synced INTEGER NOT NULL)",
        "CREATE TABLE alarm (seq INTEGER PRIMARY KEY, alarm_id TEXT NOT NULL, active INTEGER NOT NULL,"
        " severity TEXT NOT NULL, source TEXT NOT NULL, text TEXT NOT NULL, data TEXT NOT NULL,"
        " wall_ns INTEGER NOT NULL, mono_ns INTEGER NOT NULL, boot INTEGER NOT NULL, synced INTEGER NOT NULL)",
        # The last seq ever given per lane, written in the same transaction as
        # the rows: seq is never reused, even once every row has been dropped.
        "CREATE TABLE lane_seq (lane TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE TABLE cursor (consumer TEXT NOT NULL, lane TEXT NOT NULL, seq INTEGER NOT NULL,"
        " PRIMARY KEY (consumer, lane)) WITHOUT ROWID",
    ):
        conn.execute(sql)
    for lane in (Lane.READING, Lane.EVENT, Lane.ALARM):
        conn.execute("INSERT INTO lane_seq (lane, last_seq) VALUES (?, 0)", (str(lane),))
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [("stream_epoch", secrets.token_hex(8)), ("created_ns", str(time.time_ns()))],
    )


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    """Persistent counters (drops, flushes) and when each cursor last moved."""
    conn.execute("CREATE TABLE counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID")
    conn.execute("ALTER TABLE cursor ADD COLUMN updated_ns INTEGER")


def _v2_to_v3(conn: sqlite3.Connection) -> None:
    """Small JSON documents drivers keep across restarts (LoRaWAN frame counters, learnt plans)."""
    conn.execute("CREATE TABLE driver_state (driver TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
                 " updated_ns INTEGER NOT NULL, PRIMARY KEY (driver, key)) WITHOUT ROWID")


def _v3_to_v4(conn: sqlite3.Connection) -> None:
    """The upload lane: records made by the upload policies, in blocks.

    A row is a block of consecutive records (seq ``first_seq`` to ``seq``)
    in the sync codec's reading format, zlib-compressed: a week of 1-minute
    aggregates of 3,000 points is ~30 million records, ~9 bytes each this
    way against ~45 as one row each. ``seq`` (the key) is the block's last
    seq so ``DELETE ... WHERE seq <= acked`` drops only whole acknowledged
    blocks; ``wall_ns`` is the block's earliest record time.
    """
    conn.execute("CREATE TABLE upload (seq INTEGER PRIMARY KEY, first_seq INTEGER NOT NULL, n INTEGER NOT NULL,"
                 " wall_ns INTEGER NOT NULL, body BLOB NOT NULL)")
    conn.execute("INSERT INTO lane_seq (lane, last_seq) VALUES ('upload', 0)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v0_to_v1, _v1_to_v2, _v2_to_v3, _v3_to_v4]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, path: Path | str, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to ``target``; returns the version found before."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise PermanentError(
            f"store {path}: schema version {found} is newer than this zaas-edge understands "
            f"({SCHEMA_VERSION}): upgrade zaas-edge, or move the file aside to start a fresh store"
        )
    for version in range(found, target):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version={version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return found
