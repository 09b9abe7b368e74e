"""The ``zaas-edge`` command: a thin click layer over the library.

Every command has ``--help``, prints tables for people and ``--json`` for
scripts, and fails with one line on stderr and a non-zero exit, never a
traceback. Command groups live in sibling modules and register themselves on
``main`` when imported below.
"""

from __future__ import annotations

__all__ = ["main", "cli"]

import os
import sys

import click

from zaas_edge import __version__
from zaas_edge.errors import ConfigError, ZaasError

EXIT_ERROR = 1
EXIT_CONFIG = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="zaas-edge")
@click.option(
    "--config", "-c", "config_path", envvar="ZAAS_EDGE_CONFIG", type=click.Path(dir_okay=False),
    default=None, help="Configuration file [env ZAAS_EDGE_CONFIG; default /etc/zaas-edge/config.toml].",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """zaas-edge: the building gateway (meters, buffer, load shedding, MQTT, sync)."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


def _register(argv: list[str] | None = None) -> None:
    """Add the commands to ``cli`` (each module registers its own on import).

    ``run`` is the daemon: it needs none of the technicians' commands, and
    importing every driver's CLI would cost the daemon megabytes of RSS for
    its whole life on a 1 GB box.
    """
    if _subcommand(sys.argv[1:] if argv is None else argv) == "run":
        from zaas_edge.cli import daemon_cmd  # noqa: F401
        return
    from zaas_edge.cli import commands  # noqa: F401


def _subcommand(args: list[str]) -> str | None:
    """The first word that is not a global option or its value."""
    takes_value = {"-c", "--config"}
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in takes_value:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn every expected failure into one line."""
    _register(argv)
    try:
        rc = cli.main(args=argv, prog_name="zaas-edge", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("zaas-edge: aborted", err=True)
        sys.exit(EXIT_ERROR)
    except click.ClickException as exc:
        click.echo(f"zaas-edge: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        for issue in exc.issues:
            click.echo(f"zaas-edge: config error: {issue}", err=True)
        sys.exit(EXIT_CONFIG)
    except ZaasError as exc:
        click.echo(f"zaas-edge: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"zaas-edge: error: {exc.strerror or exc}{where}", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except BaseException as exc:  # last resort: still one line, no traceback
        click.echo(f"zaas-edge: internal error: {type(exc).__name__}: {exc} "
                   "(run with ZAAS_EDGE_DEBUG=1 for details)", err=True)
        if os.environ.get("ZAAS_EDGE_DEBUG"):
            raise
        sys.exit(EXIT_ERROR)
    sys.exit(rc if isinstance(rc, int) else 0)
