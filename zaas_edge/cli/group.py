"""The click group of the ``zaas-edge`` command: the technicians' commands register on ``cli``.

Every command has ``--help``, prints tables for people and ``--json`` for scripts. Command
modules live beside this one (``*_cmd.py``) and in each driver package's ``cli`` module; they
register themselves on ``cli`` when imported (``zaas_edge.cli.commands``).
"""

from __future__ import annotations

__all__ = ["cli", "register", "run"]


import click

from zaas_edge import __version__
from zaas_edge.cli import EXIT_ERROR, say


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


def register(argv: list[str] | None = None) -> None:
    """Add the commands ``argv`` may name to ``cli`` (each module registers its own on import);
    every command without ``argv``.

    ``run`` is the daemon: it needs none of the technicians' commands, and
    importing every driver's CLI would cost the daemon megabytes of RSS for
    its whole life on a 1 GB box.
    """
    if argv is not None and _subcommand(argv) == "run":
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


def run(args: list[str]) -> int:
    """Run ``args`` through click; click's own failures (usage, abort) become one line."""
    register(args)
    try:
        rc = cli.main(args=args, prog_name="zaas-edge", standalone_mode=False)
    except click.exceptions.Abort:
        say("aborted")
        return EXIT_ERROR
    except click.ClickException as exc:
        say(f"error: {exc.format_message()}")
        return exc.exit_code
    return rc if isinstance(rc, int) else 0
