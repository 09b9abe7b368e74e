"""``zaas-edge config check|show``: validate and display the configuration.

``check`` lists every problem at once (exit 2), secret files included, so a
technician fixes a file in one pass. ``show`` prints the effective
configuration (defaults filled in, drop-ins merged, secrets redacted) as
TOML a person can read and paste back, or JSON for scripts.
"""

from __future__ import annotations

__all__ = ["config_group", "render_toml"]

import sys
from collections.abc import Mapping
from typing import Any

import click

from zaas_edge.cli import EXIT_CONFIG, cli
from zaas_edge.cli.output import emit, json_option
from zaas_edge.config import DEFAULTS_LABEL, LoadedConfig, check_config, load_config
from zaas_edge.errors import ConfigError
from zaas_edge.secrets import redacted
from zaas_edge.tomlw import toml_key, toml_value


def _global_path(ctx: click.Context) -> str | None:
    obj = ctx.find_root().obj or {}
    return obj.get("config_path")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _fail(issues: list[Any]) -> None:
    for issue in issues:
        click.echo(str(issue))
    click.echo(f"zaas-edge: configuration has {_plural(len(issues), 'problem')}", err=True)
    sys.exit(EXIT_CONFIG)


@cli.group("config")
def config_group() -> None:
    """Check and show the configuration (file, drop-ins and secret files)."""


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def check_cmd(ctx: click.Context, file: str | None) -> None:
    """Validate FILE (default: the global --config) with its conf.d drop-ins.

    Prints "FILE: ok (N drivers)" and exits 0, or prints every problem, one
    per line with file and key path, and exits 2. Secret files are checked
    too: present, regular, mode 0600 or stricter.
    """
    path = file or _global_path(ctx)
    issues = check_config(path)
    if issues:
        _fail(issues)
    loaded = load_config(path)
    label = str(loaded.sources[0]) if loaded.sources and not loaded.defaults_only else "built-in defaults"
    extra = len(loaded.sources) - (0 if loaded.defaults_only else 1)
    detail = _plural(len(loaded.drivers), "driver")
    if extra:
        detail += f", {_plural(extra, 'drop-in')}"
    if loaded.notice:
        click.echo(loaded.notice, err=True)
    click.echo(f"{label}: ok ({detail})")


@config_group.command("show")
@json_option
@click.pass_context
def show_cmd(ctx: click.Context, as_json: bool) -> None:
    """Print the effective configuration with secret values redacted.

    Defaults are filled in and drop-ins merged; the files read are listed
    first. Keys set by a drop-in are marked with the file that set them.
    """
    path = _global_path(ctx)
    try:
        loaded = load_config(path, every_origin=True)
    except ConfigError as exc:
        _fail(exc.issues)
        return
    data = {
        "sources": [str(p) for p in loaded.sources],
        "defaults_only": loaded.defaults_only,
        "notice": loaded.notice,
        "config": redacted(loaded),
    }
    emit(data, as_json, lambda d: click.echo(render_toml(loaded, d["config"]), nl=False))


# --- TOML rendering ----------------------------------------------------------

def render_toml(loaded: LoadedConfig, data: Mapping[str, Any]) -> str:
    """``data`` (from ``redacted``) as TOML, sources listed first.

    Unset optional keys are shown as comments; keys set by a drop-in carry a
    comment naming it.
    """
    main = None if loaded.defaults_only or not loaded.sources else str(loaded.sources[0])
    lines = ["# Effective configuration: defaults filled in, drop-ins merged, secrets redacted."]
    if loaded.sources:
        lines.append("# Files read, in merge order:")
        lines += [f"#   {p}" for p in loaded.sources]
    if loaded.defaults_only:
        lines.append(f"# {loaded.notice or 'built-in defaults'}")

    def note(loc: tuple[str | int, ...]) -> str:
        src = loaded.origins.get(loc)
        return f"  # from {src}" if src is not None and src not in (main, DEFAULTS_LABEL) else ""

    def table(header: str, body: Mapping[str, Any], loc: tuple[str | int, ...]) -> None:
        lines.append("")
        lines.append(header)
        subtables = []
        for k, v in body.items():
            here = loc + (k,)
            if v is None:
                lines.append(f"# {toml_key(k)} is not set")
            elif isinstance(v, Mapping) and header.startswith("[") and not header.startswith("[["):
                subtables.append((k, v))
            elif (k == "mode" or k.endswith("_mode")) and isinstance(v, int) and not isinstance(v, bool):
                lines.append(f"{toml_key(k)} = 0o{v:03o}{note(here)}")  # file modes read best in octal
            else:
                lines.append(f"{toml_key(k)} = {toml_value(v)}{note(here)}")
        for k, v in subtables:
            table(f"[{header[1:-1]}.{toml_key(k)}]", v, loc + (k,))

    # Top-level keys first: after a [table] header a key belongs to that table.
    tables = [(k, v) for k, v in data.items() if isinstance(v, Mapping)]
    arrays = [(k, v) for k, v in data.items()
              if isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v)]
    structured = {k for k, _ in tables} | {k for k, _ in arrays}
    plain = [(k, v) for k, v in data.items() if k not in structured]
    if plain:
        lines.append("")
    for k, v in plain:
        lines.append(f"# {toml_key(k)} is not set" if v is None else f"{toml_key(k)} = {toml_value(v)}")
    for k, v in tables:
        table(f"[{toml_key(k)}]", v, (k,))
    for k, v in arrays:
        for i, entry in enumerate(v):
            table(f"[[{toml_key(k)}]]", entry, (k, i))
    return "\n".join(lines) + "\n"
