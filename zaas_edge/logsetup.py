"""Log lines for journald and for people, with stable fields and no secrets.

Under systemd (``JOURNAL_STREAM`` set) every line written to stdout starts with
a ``<N>`` syslog priority, continuation lines of a multi-line message or a
traceback included, so journald files each line at the right priority; there
is no timestamp, journald adds its own::

    <6>sync: batch acknowledged acked_through=1200 lane=reading
    <3>store: flush failed error="disk I/O error"
    <3>store:   Traceback (most recent call last):

In a terminal the same records read::

    2026-11-28 12:00:00.123Z INFO  sync: batch acknowledged acked_through=1200 lane=reading

Times are UTC (the ``Z``): the box has no RTC and sits in a park of
gateways whose logs are compared side by side.

Structured values go in ``extra={"fields": {...}}``; they are appended as
``key=value`` sorted by key, so a line's shape never depends on call order.

Secrets: :func:`register_secret` adds a value to a process-wide set, and
every line this module writes has each registered value replaced by ``***``
(message, arguments, fields and traceback alike). :class:`SecretFilter` does
the same on records for any other handler.
"""

from __future__ import annotations

__all__ = [
    "LEVELS",
    "NOTICE",
    "SEVERITY_LEVELS",
    "level_of",
    "log_notice",
    "journal_priority",
    "JournalFormatter",
    "SecretFilter",
    "TextFormatter",
    "forget_secrets",
    "format_fields",
    "redact",
    "redact_secret",
    "register_secret",
    "setup_logging",
]

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Mapping
from typing import TextIO

from zaas_edge.model import Alarm, Event, Severity

#: Between INFO and WARNING: normal but significant (a shed, a reload, a
#: driver restarted). syslog's "notice".
NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

# The one table from an event's severity to its logging level and journald (syslog) priority.
SEVERITY_LEVELS: dict[Severity, tuple[int, int]] = {
    Severity.DEBUG: (logging.DEBUG, 7),
    Severity.INFO: (logging.INFO, 6),
    Severity.NOTICE: (NOTICE, 5),
    Severity.WARNING: (logging.WARNING, 4),
    Severity.ERROR: (logging.ERROR, 3),
    Severity.CRITICAL: (logging.CRITICAL, 2),
}
_BY_LEVEL = sorted(SEVERITY_LEVELS.values(), reverse=True)


def _logger_notice(self: logging.Logger, msg: object, *args: object, **kwargs: object) -> None:
    """``log.notice(...)``, like ``log.info(...)``, at the NOTICE level."""
    if self.isEnabledFor(NOTICE):
        self._log(NOTICE, msg, args, **kwargs)  # type: ignore[arg-type]


# Every logger gains .notice() once this module is imported (the daemon
# imports it before anything logs).
if not hasattr(logging.Logger, "notice"):
    logging.Logger.notice = _logger_notice  # type: ignore[attr-defined]

#: Names accepted by :func:`setup_logging` (the ``[log] level`` key).
LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": NOTICE,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

_FORMATS = ("auto", "journal", "text")
_PREFIX = "zaas_edge."
_REDACTED = "***"
# Shorter values are refused: "on", "1", "abc" occur in ordinary text, so
# redacting them would shred every line (numbers, words, field names) and
# hide the very context needed to debug, while a secret that short protects
# nothing anyway. The configuration should refuse such secrets outright.
_MIN_SECRET_LEN = 4


# -- secrets -------------------------------------------------------------------------

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
# Longest first, so a secret that contains another is replaced whole.
_ordered: tuple[str, ...] = ()


def register_secret(value: str | None) -> bool:
    """Never let ``value`` reach a log line; True when it was registered.

    Values under 4 characters (and None) are not registered, see above.
    Call it as soon as a secret is read (password file, token, key PIN).
    """
    global _ordered
    if not value or len(value) < _MIN_SECRET_LEN:
        return False
    with _secrets_lock:
        _secrets.add(value)
        _ordered = tuple(sorted(_secrets, key=len, reverse=True))
    return True


#: Same as :func:`register_secret`: marks ``value`` as one to redact.
redact_secret = register_secret


def forget_secrets() -> None:
    """Empty the set (tests; a process never needs to un-register a secret)."""
    global _ordered
    with _secrets_lock:
        _secrets.clear()
        _ordered = ()


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


class SecretFilter(logging.Filter):
    """Redacts registered secrets in a record before any handler formats it.

    The message is rendered with its arguments, then redacted; ``fields`` and
    the exception text likewise. Attach it to handlers this module does not
    own; the handler set up by :func:`setup_logging` also redacts the final
    formatted text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not _ordered:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: keep the raw parts
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message), None
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            record.fields = {k: redact(v) if isinstance(v, str) else _redact_value(v) for k, v in fields.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _redact_value(value: object) -> object:
    text = str(value)
    redacted = redact(text)
    return value if redacted == text else redacted


# -- fields --------------------------------------------------------------------------

_BARE = re.compile(r"^[^\s\"'=\\]+$")
_KEY_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


def format_fields(fields: Mapping[str, object] | None) -> str:
    """``key=value`` pairs sorted by key; values quoted when they need it.

    A value is quoted (``"..."`` with ``\\`` escapes) when empty or holding
    whitespace, quotes, ``=`` or backslashes. Booleans are ``true``/``false``,
    None is ``null``.
    """
    if not fields:
        return ""
    parts = []
    for key in sorted(fields, key=str):
        parts.append(f"{_KEY_BAD.sub('_', str(key)) or '_'}={_format_value(fields[key])}")
    return " ".join(parts)


def _format_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if _BARE.match(text):
        return text
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )
    return f'"{escaped}"'


# -- formatters ----------------------------------------------------------------------


def component_of(name: str) -> str:
    """The logger name without the ``zaas_edge.`` prefix (``zaas_edge.sync`` -> ``sync``)."""
    return name.removeprefix(_PREFIX)


def journal_priority(levelno: int) -> int:
    """syslog priority for a logging level: debug 7, info 6, notice 5, warning 4, error 3, critical 2."""
    for level, priority in _BY_LEVEL:
        if levelno >= level:
            return priority
    return 7


def level_of(severity: Severity) -> int:
    """The logging level an event or alarm of ``severity`` is logged at."""
    return SEVERITY_LEVELS[severity][0]


class _Base(logging.Formatter):
    """Splits a record into its head line and continuation lines."""

    def lines(self, record: logging.LogRecord) -> tuple[str, list[str]]:
        message = record.getMessage()
        first, *rest = message.split("\n") if message else [""]
        fields = format_fields(getattr(record, "fields", None))
        head = f"{component_of(record.name)}: {first}"
        if fields:
            head = f"{head} {fields}" if first else f"{head}{fields}"
        more = list(rest)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            more.extend(record.exc_text.split("\n"))
        if record.stack_info:
            more.extend(self.formatStack(record.stack_info).split("\n"))
        return head, more


class JournalFormatter(_Base):
    """``<N>component: message key=value``, with ``<N>`` on every line."""

    def format(self, record: logging.LogRecord) -> str:
        head, more = self.lines(record)
        prefix = f"<{journal_priority(record.levelno)}>"
        indent = f"{prefix}{component_of(record.name)}:   "
        text = "\n".join([prefix + head] + [indent + line for line in more if line])
        return redact(text)


class TextFormatter(_Base):
    """``2026-11-28 12:00:00.123Z INFO  component: message key=value``, tracebacks indented."""

    def format(self, record: logging.LogRecord) -> str:
        head, more = self.lines(record)
        t = time.gmtime(record.created)
        ms = int(record.msecs)
        stamp = f"{time.strftime('%Y-%m-%d %H:%M:%S', t)}.{ms:03d}Z"
        first = f"{stamp} {record.levelname:<5} {head}"
        text = "\n".join([first] + ["    " + line for line in more if line])
        return redact(text)


# -- set-up --------------------------------------------------------------------------


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler :func:`setup_logging` installs (found again on re-call)."""


_setup_lock = threading.Lock()


def setup_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure logging for the process; safe to call again (SIGHUP reload).

    ``level`` is one of debug, info, notice, warning, error and applies to
    the ``zaas_edge`` loggers; other libraries log at warning and above
    (or ``level`` when stricter), so ``debug`` does not flood the journal
    with pymodbus frames. ``fmt`` is ``journal``, ``text`` or ``auto``
    (journal when ``JOURNAL_STREAM`` is set and ``stream`` is not a terminal).
    ``stream`` defaults to ``sys.stdout``. A second call replaces the level,
    format and stream of the same handler: never two handlers, never a
    duplicated line.
    """
    try:
        levelno = LEVELS[level.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}") from None
    if fmt not in _FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(_FORMATS)}")
    out = sys.stdout if stream is None else stream
    journal = fmt == "journal" or (fmt == "auto" and _is_journal(out))
    formatter: logging.Formatter = JournalFormatter() if journal else TextFormatter()

    with _setup_lock:
        root = logging.getLogger()
        handler = next((h for h in root.handlers if isinstance(h, _Handler)), None)
        if handler is None:
            handler = _Handler(out)
            handler.addFilter(SecretFilter())
            root.addHandler(handler)
        elif handler.stream is not out:
            handler.setStream(out)
        handler.setFormatter(formatter)
        handler.setLevel(logging.NOTSET)
        root.setLevel(max(levelno, logging.WARNING))
        logging.getLogger("zaas_edge").setLevel(levelno)
        # warnings.warn() from libraries goes through the same lines.
        logging.captureWarnings(True)


def _is_journal(stream: TextIO) -> bool:
    """Whether lines on ``stream`` go to journald: ``JOURNAL_STREAM`` is set and it is no terminal.

    systemd sets ``JOURNAL_STREAM`` for a service whose output it connects to
    the journal, but the variable is inherited: a technician's tmux started
    from a service has it too. A terminal always gets plain text.
    """
    if not os.environ.get("JOURNAL_STREAM"):
        return False
    try:
        return not stream.isatty()
    except (AttributeError, OSError, ValueError):
        return True


# -- events and alarms in the journal ----------------------------------------------

_notice_log = logging.getLogger("zaas_edge.events")


def log_notice(item: Event | Alarm) -> None:
    """Events and alarm transitions also go to the journal, for the on-call maintainer: one line an
    incident. An event that names its alarm (``data["alarm"]``) is the same incident as the alarm's
    line and is not logged again."""
    if isinstance(item, Alarm):
        state = "raised" if item.active else "cleared"
        _notice_log.log(level_of(item.severity) if item.active else logging.INFO, "alarm %s %s: %s",
                        item.alarm_id, state, item.text,
                        extra={"fields": {"alarm": item.alarm_id, "source": item.source}})
    elif item.severity != Severity.DEBUG and "alarm" not in item.data:
        _notice_log.log(level_of(item.severity), "%s", item.text,
                        extra={"fields": {"event": item.kind, "source": item.source}})
