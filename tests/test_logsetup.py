"""Log lines: journald priorities on every line, text for people, fields, secrets."""

from __future__ import annotations

import calendar
import io
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from zaas_edge import logsetup
from zaas_edge.logsetup import (
    NOTICE,
    JournalFormatter,
    SecretFilter,
    TextFormatter,
    forget_secrets,
    format_fields,
    redact,
    redact_secret,
    register_secret,
    setup_logging,
)


@pytest.fixture(autouse=True)
def clean_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without our handler, secrets or JOURNAL_STREAM, and leaves none."""
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("zaas_edge").level)
    forget_secrets()
    yield
    for h in list(root.handlers):
        if isinstance(h, logsetup._Handler):
            root.removeHandler(h)
    root.setLevel(saved[1])
    logging.getLogger("zaas_edge").setLevel(saved[2])
    logging.captureWarnings(False)
    forget_secrets()


def _boom() -> None:
    raise RuntimeError("disk I/O error")


def test_journal_traceback_every_line_has_priority() -> None:
    out = io.StringIO()
    setup_logging("info", "journal", stream=out)
    log = logging.getLogger("zaas_edge.store")
    try:
        _boom()
    except RuntimeError:
        log.exception("flush failed", extra={"fields": {"rows": 250, "error": "disk I/O error"}})
    lines = out.getvalue().splitlines()
    assert lines[0] == '<3>store: flush failed error="disk I/O error" rows=250'
    assert len(lines) >= 4
    assert all(line.startswith("<3>") for line in lines), lines
    assert lines[1] == "<3>store:   Traceback (most recent call last):"
    assert lines[-1] == "<3>store:   RuntimeError: disk I/O error"
    assert any('in _boom' in line for line in lines)


@pytest.mark.parametrize(
    ("level", "prefix"),
    [(logging.DEBUG, "<7>"), (logging.INFO, "<6>"), (NOTICE, "<5>"), (logging.WARNING, "<4>"),
     (logging.ERROR, "<3>"), (logging.CRITICAL, "<2>")],
)
def test_journal_priority_per_level(level: int, prefix: str) -> None:
    out = io.StringIO()
    setup_logging("debug", "journal", stream=out)
    logging.getLogger("zaas_edge.rules").log(level, "shed %s", "boiler")
    assert out.getvalue() == f"{prefix}rules: shed boiler\n"


def test_an_events_severity_is_logged_at_its_level_and_journal_priority() -> None:
    from zaas_edge.logsetup import SEVERITY_LEVELS, journal_priority, level_of
    from zaas_edge.model import Severity

    assert set(SEVERITY_LEVELS) == set(Severity)
    for severity, (level, priority) in SEVERITY_LEVELS.items():
        assert level_of(severity) == level and journal_priority(level) == priority
    assert [journal_priority(level_of(s)) for s in Severity] == [7, 6, 5, 4, 3, 2]
    assert journal_priority(logging.INFO + 1) == 6 and journal_priority(1) == 7


def test_journal_multiline_message_prefixes_each_line() -> None:
    out = io.StringIO()
    setup_logging("info", "journal", stream=out)
    logging.getLogger("zaas_edge.config").warning("two problems:\nfirst\nsecond", extra={"fields": {"n": 2}})
    assert out.getvalue().splitlines() == [
        "<4>config: two problems: n=2",
        "<4>config:   first",
        "<4>config:   second",
    ]


def test_auto_uses_journal_when_journal_stream_set(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    setup_logging("info", "auto", stream=out)
    logging.getLogger("zaas_edge.sync").info("up")
    assert out.getvalue() == "<6>sync: up\n"


def test_auto_without_journal_stream_is_text() -> None:
    out = io.StringIO()
    setup_logging("info", "auto", stream=out)
    logging.getLogger("zaas_edge.sync").info("up")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z INFO  sync: up\n", out.getvalue())


def test_auto_gives_a_terminal_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """JOURNAL_STREAM inherited into a terminal session (tmux under systemd) must not prefix lines."""
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    primary, secondary = os.openpty()
    try:
        with os.fdopen(secondary, "w", closefd=False) as tty:
            setup_logging("info", "auto", stream=tty)
            logging.getLogger("zaas_edge.cli").info("on a terminal")
            tty.flush()
        text = os.read(primary, 4096).decode()
    finally:
        os.close(primary)
        os.close(secondary)
    assert "<6>" not in text
    assert text.rstrip().endswith("Z INFO  cli: on a terminal")


def test_auto_journal_for_a_file_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    log_file = tmp_path / "out.log"
    with log_file.open("w") as f:
        setup_logging("info", "auto", stream=f)
        logging.getLogger("zaas_edge.x").info("to journal")
    assert log_file.read_text() == "<6>x: to journal\n"


def test_text_format_exact_line() -> None:
    created = calendar.timegm((2026, 11, 28, 12, 0, 0)) + 0.123
    record = logging.makeLogRecord({
        "name": "zaas_edge.sync", "levelno": logging.INFO, "levelname": "INFO", "msg": "batch %s acknowledged",
        "args": (7,), "created": created, "msecs": 123.0, "fields": {"lane": "reading", "acked_through": 1200},
    })
    assert TextFormatter().format(record) == (
        "2026-11-28 12:00:00.123Z INFO  sync: batch 7 acknowledged acked_through=1200 lane=reading"
    )


def test_text_traceback_is_indented() -> None:
    out = io.StringIO()
    setup_logging("info", "text", stream=out)
    try:
        _boom()
    except RuntimeError:
        logging.getLogger("zaas_edge.store").exception("flush failed")
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"\S+ \S+Z ERROR store: flush failed", lines[0])
    assert lines[1] == "    Traceback (most recent call last):"
    assert lines[-1] == "    RuntimeError: disk I/O error"
    assert all(line.startswith("    ") for line in lines[1:])


def test_component_strips_prefix_only() -> None:
    out = io.StringIO()
    setup_logging("info", "journal", stream=out)
    logging.getLogger("zaas_edge.drivers.modbus").info("a")
    logging.getLogger("zaas_edge").info("b")
    logging.getLogger("aiohttp.client").warning("c")
    assert out.getvalue().splitlines() == ["<6>drivers.modbus: a", "<6>zaas_edge: b", "<4>aiohttp.client: c"]


def test_fields_sorted_and_quoted() -> None:
    fields = {
        "b": "two words", "a": 1, "c": 'say "hi"', "d": True, "e": None, "f": "", "g": "x=y",
        "h": "line\nbreak", "i": 2.5, "bad key": "v", "j": "back\\slash",
    }
    assert format_fields(fields) == (
        'a=1 b="two words" bad_key=v c="say \\"hi\\"" d=true e=null f="" g="x=y" '
        'h="line\\nbreak" i=2.5 j="back\\\\slash"'
    )
    assert format_fields({}) == ""
    assert format_fields(None) == ""


def test_fields_order_does_not_depend_on_call_order() -> None:
    out = io.StringIO()
    setup_logging("info", "journal", stream=out)
    log = logging.getLogger("zaas_edge.driver")
    log.info("restarted", extra={"fields": {"driver": "system", "restarts": 3}})
    log.info("restarted", extra={"fields": {"restarts": 3, "driver": "system"}})
    assert out.getvalue().splitlines() == ["<6>driver: restarted driver=system restarts=3"] * 2


def test_secret_redacted_everywhere() -> None:
    secret = "s3cr3t-Pa55word"
    assert register_secret(secret) is True
    out = io.StringIO()
    setup_logging("info", "journal", stream=out)
    log = logging.getLogger("zaas_edge.mqtt")
    log.info(f"literal {secret} in message")
    log.info("argument %s here", secret)
    log.info("field", extra={"fields": {"password": secret, "url": f"mqtt://u:{secret}@broker"}})
    try:
        raise ValueError(f"login refused for {secret}")
    except ValueError:
        log.exception("connect failed")
    text = out.getvalue()
    assert secret not in text
    lines = text.splitlines()
    assert lines[0] == "<6>mqtt: literal *** in message"
    assert lines[1] == "<6>mqtt: argument *** here"
    assert lines[2] == "<6>mqtt: field password=*** url=mqtt://u:***@broker"
    assert lines[-1] == "<3>mqtt:   ValueError: login refused for ***"


def test_secret_redacted_in_text_mode_and_alias() -> None:
    redact_secret("tok-ABCDEF")
    out = io.StringIO()
    setup_logging("info", "text", stream=out)
    logging.getLogger("zaas_edge.sync").warning("token=%s", "tok-ABCDEF")
    assert out.getvalue().rstrip().endswith("sync: token=***")


def test_short_secrets_are_not_registered() -> None:
    assert register_secret("abc") is False
    assert register_secret("") is False
    assert register_secret(None) is False
    assert redact("abc abcd") == "abc abcd"
    assert register_secret("abcd") is True
    assert redact("abc abcd") == "abc ***"


def test_longest_secret_wins() -> None:
    register_secret("hunter")
    register_secret("hunter2-extended")
    assert redact("pw hunter2-extended and hunter") == "pw *** and ***"


def test_secret_filter_on_a_foreign_handler() -> None:
    register_secret("key-0123456789")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s %(fields)s"))
    handler.addFilter(SecretFilter())
    log = logging.getLogger("foreign.test")
    log.propagate = False
    log.addHandler(handler)
    try:
        try:
            raise KeyError("key-0123456789")
        except KeyError:
            log.exception("using %s", "key-0123456789", extra={"fields": {"k": "key-0123456789"}})
    finally:
        log.removeHandler(handler)
        log.propagate = True
    text = out.getvalue()
    assert "key-0123456789" not in text
    assert text.startswith("using *** {'k': '***'}")
    assert "KeyError: '***'" in text


def test_level_changes_on_recall_with_one_handler() -> None:
    out = io.StringIO()
    log = logging.getLogger("zaas_edge.runtime")
    setup_logging("info", "journal", stream=out)
    log.debug("hidden")
    log.info("one")
    setup_logging("debug", "journal", stream=out)  # SIGHUP with level = "debug"
    log.debug("two")
    setup_logging("warning", "journal", stream=out)
    log.info("hidden again")
    log.warning("three")
    assert out.getvalue().splitlines() == ["<6>runtime: one", "<7>runtime: two", "<4>runtime: three"]
    ours = [h for h in logging.getLogger().handlers if isinstance(h, logsetup._Handler)]
    assert len(ours) == 1


def test_recall_switches_format_and_stream() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging("info", "journal", stream=first)
    setup_logging("info", "text", stream=second)
    logging.getLogger("zaas_edge.cli").info("hello")
    assert first.getvalue() == ""
    assert second.getvalue().endswith("Z INFO  cli: hello\n")


def test_notice_level() -> None:
    out = io.StringIO()
    setup_logging("notice", "text", stream=out)
    log = logging.getLogger("zaas_edge.rules")
    log.info("not shown")
    log.log(NOTICE, "shed %s", "heater-2")
    log.notice("restored %s", "heater-2", extra={"fields": {"after_s": 300}})  # type: ignore[attr-defined]
    assert logging.getLevelName(NOTICE) == "NOTICE"
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("NOTICE rules: shed heater-2")
    assert lines[1].endswith("NOTICE rules: restored heater-2 after_s=300")
    setup_logging("warning", "journal", stream=out)
    log.notice("not shown at warning")  # type: ignore[attr-defined]
    assert len(out.getvalue().splitlines()) == 2


def test_libraries_stay_at_warning_when_debugging(monkeypatch) -> None:
    # The Modbus transport quietens pymodbus further once it runs; start from an untouched logger.
    monkeypatch.setattr(logging.getLogger("pymodbus"), "level", logging.NOTSET)
    out = io.StringIO()
    setup_logging("debug", "journal", stream=out)
    logging.getLogger("pymodbus.transaction").debug("frame 01 03 00 00")
    logging.getLogger("pymodbus.transaction").info("connected")
    logging.getLogger("pymodbus.transaction").warning("retrying")
    logging.getLogger("zaas_edge.drivers.modbus").debug("poll")
    assert out.getvalue().splitlines() == ["<4>pymodbus.transaction: retrying", "<7>drivers.modbus: poll"]


def test_warnings_are_logged() -> None:
    out = io.StringIO()
    setup_logging("info", "journal", stream=out)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated knob", DeprecationWarning, stacklevel=1)
    assert out.getvalue().startswith("<4>py.warnings: ")
    assert "DeprecationWarning: deprecated knob" in out.getvalue()


@pytest.mark.parametrize(("level", "fmt", "match"), [
    ("verbose", "auto", "log level 'verbose' is not one of debug, info, notice, warning, error"),
    ("info", "json", "log format 'json' is not one of auto, journal, text"),
])
def test_bad_settings_are_refused(level: str, fmt: str, match: str) -> None:
    with pytest.raises(ValueError, match=re.escape(match)):
        setup_logging(level, fmt, stream=io.StringIO())


def test_journal_formatter_direct_record_without_message() -> None:
    record = logging.makeLogRecord({"name": "zaas_edge.x", "levelno": 20, "msg": "", "fields": {"a": 1}})
    assert JournalFormatter().format(record) == "<6>x: a=1"
