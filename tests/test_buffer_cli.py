"""``zaas-edge buffer stats|export`` against a real store file."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from zaas_edge.cli import cli
from zaas_edge.cli.buffer_cmd import parse_time
from zaas_edge.cli.group import register
from zaas_edge.model import Alarm, Event, Lane, Reading, Severity, Stamp
from zaas_edge.store import Store

T0 = 1_714_564_800_000_000_000  # 2024-05-01T12:00:00Z

register()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "store.sqlite"
    with Store(path) as s:
        s.append(
            [Reading(f"meter-{i % 2}/power", 100.0 + i, "W", T0 + i * 60_000_000_000, i, "boot-1", True)
             for i in range(10)],
            [Event("store.gap", "dropped", "store", Stamp(T0, 0, "boot-1", True), Severity.WARNING,
                   {"lane": "reading", "count": 3})],
            [Alarm("meter-1.offline", True, "no answer", "modbus", Stamp(T0 + 5, 0, "boot-1", True))],
            counters={"flushes": 1},
        )
        s.register("sync")
        s.ack("sync", Lane.READING, 4)
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout


def test_stats_json_reports_lanes_backlog_and_counters(db: Path) -> None:
    code, out = run("buffer", "stats", "--db", str(db), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["lanes"]["reading"] == {"rows": 10, "first_seq": 1, "last_seq": 10, "oldest_wall_ns": T0,
                                        "newest_wall_ns": T0 + 9 * 60_000_000_000, "backlog": 6}
    assert data["lanes"]["alarm"]["rows"] == 1 and data["lanes"]["event"]["backlog"] == 1
    assert data["counters"] == {"flushes": 1}
    assert data["cursors"]["sync"]["reading"] == 4
    assert data["cap_bytes"] is None and data["used_bytes"] > 0


def test_stats_table_for_people(db: Path) -> None:
    code, out = run("buffer", "stats", "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    reading = next(line for line in lines if line.startswith("reading"))
    assert reading.split() == ["reading", "10", "1", "10", "2024-05-01T12:00:00.000Z", "2024-05-01T12:09:00.000Z",
                               "6"]
    assert any(line.split()[:4] == ["sync", "0", "0", "4"] for line in lines)
    assert "counters       flushes=1" in lines


def test_export_csv_filters_point_and_time(db: Path) -> None:
    code, out = run("buffer", "export", "--db", str(db), "--point", "meter-1/*",
                    "--since", "2024-05-01T12:02:00", "--until", "2024-05-01T14:07:00+02:00")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["seq"], r["point"], r["value"], r["time"]) for r in rows] == [
        ("4", "meter-1/power", "103.0", "2024-05-01T12:03:00.000Z"),
        ("6", "meter-1/power", "105.0", "2024-05-01T12:05:00.000Z")]
    assert rows[0]["unit"] == "W" and rows[0]["quality"] == "ok" and rows[0]["synced"] == "1"


def test_export_jsonl_of_events_and_alarms_to_a_file(db: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "events.jsonl"
    result = CliRunner().invoke(
        cli, ["buffer", "export", "--db", str(db), "--lane", "event", "--format", "jsonl", "-o", str(out_file)])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == f"1 event rows written to {out_file}"
    [event] = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert (event["kind"], event["severity"], event["data"]) == ("store.gap", "warning", {"lane": "reading",
                                                                                          "count": 3})
    code, out = run("buffer", "export", "--db", str(db), "--lane", "alarm", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["alarm_id"], r["active"], r["severity"], r["text"]) for r in rows] == [
        ("meter-1.offline", "1", "warning", "no answer")]


def test_export_relative_since_keeps_only_recent_rows(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    now = time.time_ns()
    with Store(path) as s:
        s.append([Reading("m/p", float(h), "W", now - h * 3_600_000_000_000, 0, "b", True) for h in (5, 3, 1)])
    code, out = run("buffer", "export", "--db", str(path), "--since", "-2h", "--format", "jsonl")
    assert code == 0
    assert [json.loads(line)["value"] for line in out.splitlines()] == [1.0]


def test_bad_time_and_point_on_other_lanes_are_usage_errors(db: Path) -> None:
    result = CliRunner().invoke(cli, ["buffer", "export", "--db", str(db), "--since", "yesterday"])
    assert result.exit_code == 2 and "'yesterday' is not a time" in result.output
    result = CliRunner().invoke(cli, ["buffer", "export", "--db", str(db), "--lane", "event", "--point", "x"])
    assert result.exit_code == 2 and "--point applies to --lane reading only" in result.output


def test_parse_time_forms() -> None:
    now = T0
    assert parse_time("-30m", now) == T0 - 1800 * 10**9
    assert parse_time("-2d", now) == T0 - 2 * 86400 * 10**9
    assert parse_time("2024-05-01T12:00:00", now) == T0
    assert parse_time("2024-05-01T14:00:00+02:00", now) == T0
    assert parse_time("2024-05-01T12:00:00Z", now) == T0
    assert parse_time("2024-05-01", now) == T0 - 12 * 3600 * 10**9
    with pytest.raises(ValueError, match="relative time such as -30m"):
        parse_time("soon", now)


def test_missing_store_is_one_line_on_stderr_and_a_failing_exit(tmp_path: Path) -> None:
    missing = tmp_path / "state" / "store.sqlite"
    proc = subprocess.run(
        [sys.executable, "-c", "from zaas_edge.cli import main; main()", "buffer", "stats", "--db", str(missing)],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"zaas-edge: error: no store at {missing}: the daemon may not have run yet "
        "(check gateway.state_dir in the configuration, or pass --db PATH)"]
