"""``zaas-edge buffer``: look into the local store (the outbox) without stopping the daemon.

Commands open their own read-only connection, which WAL lets run while the
daemon writes. ``--db PATH`` reads a copied database (field support) instead
of the one the configuration names.
"""

from __future__ import annotations

__all__ = ["buffer", "parse_time", "TimeParam"]

import csv
import json
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import click

from zaas_edge.cli import cli
from zaas_edge.cli.output import emit, format_bytes, json_option, table
from zaas_edge.errors import ZaasError
from zaas_edge.model import Lane

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RELATIVE = re.compile(r"^-\s*(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

_COLUMNS = {
    Lane.READING: ["seq", "time", "point", "value", "unit", "quality", "wall_ns", "mono_ns", "boot_id", "synced"],
    Lane.EVENT: ["seq", "time", "kind", "severity", "source", "text", "data", "wall_ns", "mono_ns", "boot_id",
                 "synced"],
    Lane.ALARM: ["seq", "time", "alarm_id", "active", "severity", "source", "text", "data", "wall_ns", "mono_ns",
                 "boot_id", "synced"],
}


def parse_time(text: str, now_ns: int | None = None) -> int:
    """Nanoseconds since the epoch from ISO 8601 (UTC unless an offset is given), ``now`` or ``-1h``."""
    text = text.strip()
    now_ns = time.time_ns() if now_ns is None else now_ns
    if text == "now":
        return now_ns
    m = _RELATIVE.match(text)
    if m:
        return now_ns - int(float(m[1]) * _UNIT_S[m[2]] * 1_000_000_000)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO 8601 (2024-05-01 or 2024-05-01T12:00:00, UTC unless an "
            "offset such as +02:00 is given) or a relative time such as -30m, -1h, -2d") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(microseconds=1) * 1000


def _iso(ns: int | None) -> str:
    if ns is None:
        return "-"
    dt = _EPOCH + timedelta(microseconds=ns // 1000)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TimeParam(click.ParamType):
    """A time as the commands that read history take it: ISO 8601 (UTC unless an offset is given), ``now``
    or ``-24h`` (``buffer export``, ``alarms history``, ``shed simulate --from``)."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_time(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _db_option(f: Any) -> Any:
    return click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="Read this database file instead of the configured <state_dir>/store.sqlite.")(f)


def _config() -> Any:
    """The loaded configuration (or the defaults while no config loader is installed)."""
    obj = click.get_current_context().find_root().obj or {}
    try:
        from zaas_edge.config import load_config
    except ImportError:
        from zaas_edge.config_model import Config
        return Config()
    return load_config(obj.get("config_path")).config


def _open(db: Path | None) -> tuple[Any, int | None]:
    """A read-only store and the configured size cap in bytes (None when unknown)."""
    from zaas_edge.store import Store

    cap: int | None = None
    if db is None:
        config = _config()
        db, cap = config.store_path, config.store.max_size_mb * 1024 * 1024
    try:
        return Store(db, readonly=True), cap
    except ZaasError as exc:
        raise click.ClickException(str(exc)) from None


@cli.group("buffer")
def buffer() -> None:
    """Inspect the local buffer (the SQLite outbox): stats and export."""


@buffer.command("stats")
@_db_option
@json_option
def stats_cmd(db: Path | None, as_json: bool) -> None:
    """Rows, seq ranges, backlog, size and drop counters of each lane."""
    store, cap = _open(db)
    with store:
        try:
            stats = store.stats(cap_bytes=cap)
        except ZaasError as exc:
            raise click.ClickException(str(exc)) from None
    emit(stats.as_dict(), as_json, lambda _d: _print_stats(stats))


def _print_stats(s: Any) -> None:
    click.echo(f"store          {s.path}")
    click.echo(f"schema         {s.schema_version}    stream epoch {s.stream_epoch}")
    cap = f" of {format_bytes(s.cap_bytes)} cap" if s.cap_bytes else ""
    click.echo(f"size           {format_bytes(s.file_bytes)} on disk (WAL {format_bytes(s.wal_bytes)}), "
               f"{format_bytes(s.used_bytes)} used{cap}")
    click.echo("")
    rows = [(str(lane), ls.rows, ls.first_seq or "-", ls.last_seq or "-", _iso(ls.oldest_wall_ns),
             _iso(ls.newest_wall_ns), ls.backlog) for lane, ls in s.lanes.items()]
    click.echo(table(["lane", "rows", "first seq", "last seq", "oldest", "newest", "backlog"], rows))
    click.echo("")
    if s.cursors:
        click.echo(table(["consumer"] + [str(lane) for lane in Lane],
                         [(c, *(m.get(lane, 0) for lane in Lane)) for c, m in s.cursors.items()]))
    else:
        click.echo("consumers      none registered: every row counts as unacknowledged")
    click.echo("")
    counters = ", ".join(f"{k}={v}" for k, v in s.counters.items()) or "none"
    click.echo(f"counters       {counters}")


def _csv_row(lane: Lane, row: dict[str, Any]) -> list[Any]:
    out = dict(row, time=_iso(row["wall_ns"]))
    if "data" in out:
        out["data"] = json.dumps(out["data"], sort_keys=True, separators=(",", ":"))
    for key in ("synced", "active"):
        if key in out:
            out[key] = int(out[key])
    return ["" if out.get(c) is None else out[c] for c in _columns(lane)]


def _columns(lane: Lane) -> list[str]:
    # The upload lane holds the records sync sends: the reading columns plus their aggregate fields.
    return _COLUMNS.get(lane) or _COLUMNS[Lane.READING][:6] + [
        "kind", "window_s", "count", "min", "max", "last", "last_ns", "wall_ns", "synced", "corrected"]


def _write(rows: Iterator[dict[str, Any]], lane: Lane, fmt: str, out: TextIO) -> int:
    n = 0
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(_columns(lane))
        for row in rows:
            w.writerow(_csv_row(lane, row))
            n += 1
    else:
        for row in rows:
            out.write(json.dumps(dict(row, time=_iso(row["wall_ns"])), separators=(",", ":"),
                                 allow_nan=True) + "\n")
            n += 1
    return n


@buffer.command("export")
@click.option("--lane", type=click.Choice([str(lane) for lane in Lane]), default="reading", show_default=True)
@click.option("--since", type=TimeParam(), default=None,
              help="From this time: ISO 8601 (UTC unless offset) or -1h, -2d.")
@click.option("--until", type=TimeParam(), default=None, help="Before this time, same forms as --since.")
@click.option("--point", default=None, help="Only this point key (readings); * and ? match any characters.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of stdout.")
@_db_option
def export_cmd(lane: str, since: int | None, until: int | None, point: str | None, fmt: str,
               output: Path | None, db: Path | None) -> None:
    """Stream the rows of one lane as CSV or JSON lines, in seq order."""
    the_lane = Lane(lane)
    if point is not None and the_lane is not Lane.READING:
        raise click.UsageError("--point applies to --lane reading only")
    store, _cap = _open(db)
    with store:
        try:
            rows = store.export(the_lane, since_ns=since, until_ns=until, point=point)
            if output is None:
                n = _write(rows, the_lane, fmt, sys.stdout)
            else:
                with output.open("w", encoding="utf-8", newline="") as f:
                    n = _write(rows, the_lane, fmt, f)
        except ZaasError as exc:
            raise click.ClickException(str(exc)) from None
    if output is not None:
        click.echo(f"{n} {the_lane} rows written to {output}", err=True)
