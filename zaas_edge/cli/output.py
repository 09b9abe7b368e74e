"""Output helpers shared by every command: tables for people, JSON for scripts."""

from __future__ import annotations

__all__ = ["emit", "table", "json_option", "format_duration", "format_bytes", "format_number", "found_line"]

import json
import math
import re
import struct
import sys
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

import click


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(f)


def _default(o: Any) -> Any:
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON, or through ``human`` for people."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=_default))
    else:
        human(data)


_NUMBER = re.compile(r"^[-+]?(\d[\d,_]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def _is_number(cell: Any) -> bool:
    if isinstance(cell, bool):
        return False
    if isinstance(cell, (int, float)):
        return True
    return isinstance(cell, str) and bool(_NUMBER.match(cell.strip()))


def _cell(c: Any) -> str:
    if c is None:
        return ""
    if isinstance(c, float):
        return format_number(c)
    return str(c)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain text table, each column as wide as its widest cell: nothing is ever cut.

    A column whose cells are all numbers (or empty, or ``-``) is right-aligned, its
    header too, so digits line up for comparison; floats are printed by
    :func:`format_number` (every digit the value has, none it does not).
    """
    raw = [list(row) for row in rows]
    cells = [[_cell(c) for c in row] for row in raw]
    n = max([len(headers)] + [len(r) for r in cells])
    heads = list(headers) + [""] * (n - len(headers))
    for row in cells:
        row.extend([""] * (n - len(row)))
    widths = [len(h) for h in heads]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    numeric = []
    for i in range(n):
        values = [r[i] for r in raw if i < len(r) and r[i] is not None and r[i] not in ("", "-")]
        numeric.append(bool(values) and all(_is_number(v) for v in values))

    def line(r: Sequence[str]) -> str:
        return "  ".join(c.rjust(widths[i]) if numeric[i] else c.ljust(widths[i]) for i, c in enumerate(r)).rstrip()

    out = [line(heads), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def format_number(v: float | int | None) -> str:
    """A value as a person reads it, never cut: every significant digit, no exponent below 10^16.

    A value that is exactly a float32 (what most meters send) is shown with the
    digits a float32 holds (``230.1``, not ``230.10000610351562``); an integral one
    without a decimal point; ``-`` for no value.
    """
    if v is None:
        return "-"
    if isinstance(v, bool) or isinstance(v, int):
        return str(int(v))
    if not math.isfinite(v):
        return str(v)
    if v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    text = repr(v)
    try:
        as32 = struct.unpack("<f", struct.pack("<f", v))[0]
    except OverflowError:
        as32 = None
    if as32 == v:
        for digits in range(1, 10):
            short = f"{v:.{digits}g}"
            try:
                back = struct.unpack("<f", struct.pack("<f", float(short)))[0]
            except OverflowError:  # rounded past float32's largest value (near 3.4e38): more digits
                continue
            if back == v:
                text = short
                break
    if "e" in text and 1e-6 <= abs(v) < 1e16:
        text = format(Decimal(text), "f")  # the same digits, without the exponent
    return text


def found_line(text: str) -> None:
    """One line of a scan's finds, printed the moment it is found (stdout, flushed).

    So Ctrl-C keeps what a long scan found, and a pipe sees each unit at once.
    A progress bar drawn on a terminal's stderr is cleared from its line first
    (it redraws itself on its next step).
    """
    if sys.stderr.isatty() and sys.stdout.isatty():
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
    click.echo(text)
    sys.stdout.flush()


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def format_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
