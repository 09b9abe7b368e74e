"""The ``zaas-edge`` command: its entry point, and the one way a failure reaches the technician.

Every command fails with one line on stderr and a non-zero exit, never a traceback. The
commands are a thin click layer over the library (``zaas_edge.cli.group``, on which the
command modules register). The daemon, ``run``, does not go through click: it has no options
of its own, and click with its command modules would stay in the daemon's memory for its whole
life (some 1.3 MB of a 1 GB box's). ``main`` starts it straight away when the arguments are the
global ``--config`` and ``run`` alone; anything else (``run --help`` included) goes to click.
"""

from __future__ import annotations

__all__ = ["main", "cli", "daemon_invocation", "one_line_errors", "say", "EXIT_ERROR", "EXIT_CONFIG"]

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from zaas_edge.errors import ConfigError, ZaasError

if TYPE_CHECKING:
    import click

EXIT_ERROR = 1
EXIT_CONFIG = 2


def __getattr__(name: str) -> click.Group:
    """``cli``, the click group, loaded when a command module or a test asks for it."""
    if name == "cli":
        from zaas_edge.cli.group import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def say(line: str) -> None:
    """One line on stderr, prefixed with the program's name."""
    print(f"zaas-edge: {line}", file=sys.stderr, flush=True)


def daemon_invocation(args: list[str]) -> tuple[bool, str | None]:
    """Whether ``args`` ask for the daemon and nothing else, and the configuration they name.

    ``-c FILE``, ``--config FILE`` and ``--config=FILE`` may come before ``run``; any other
    word (an option of ``run``, ``--help``, a stray argument) leaves it to click, which says
    what is wrong or runs the daemon as well.
    """
    path: str | None = None
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-c", "--config") and i + 1 < len(args) and not rest:
            path, i = args[i + 1], i + 2
            continue
        if arg.startswith("--config=") and not rest:
            path = arg.partition("=")[2]
        else:
            rest.append(arg)
        i += 1
    return rest == ["run"], path


def _run_daemon(path: str | None) -> int:
    from zaas_edge.daemon import run_daemon

    return run_daemon(path)  # ``ZAAS_EDGE_CONFIG`` is the loader's when no path is given


def _run_click(args: list[str]) -> int:
    from zaas_edge.cli.group import run

    return run(args)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command and turn every expected failure into one line."""
    args = sys.argv[1:] if argv is None else list(argv)
    daemon, path = daemon_invocation(args)
    sys.exit(one_line_errors(lambda: _run_daemon(path) if daemon else _run_click(args)))


def one_line_errors(command: Callable[[], int]) -> int:
    """``command``'s exit status, with each failure it may raise turned into one line on stderr."""
    try:
        return command()
    except ConfigError as exc:
        for issue in exc.issues:
            say(f"config error: {issue}")
        return EXIT_CONFIG
    except ZaasError as exc:
        say(f"error: {exc}")
        return EXIT_ERROR
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        say(f"error: {exc.strerror or exc}{where}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        raise
    except BaseException as exc:  # last resort: still one line, no traceback
        say(f"internal error: {type(exc).__name__}: {exc} (run with ZAAS_EDGE_DEBUG=1 for details)")
        if os.environ.get("ZAAS_EDGE_DEBUG"):
            raise
        return EXIT_ERROR
