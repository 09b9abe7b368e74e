"""Imports every command module so each registers its commands on ``cli``.

Core commands live in ``zaas_edge/cli/*_cmd.py``. A driver package adds its
own (``scan``, ``read``, bus-specific tools) in a ``cli`` module of its
package (``zaas_edge/drivers/<name>/cli.py``), and a third-party package
through the ``zaas_edge.cli`` entry-point group (a click command or group to
add at the top level). Command modules import heavy libraries inside their
commands, not at import time, so ``zaas-edge --help`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from importlib.metadata import entry_points

import click

import zaas_edge.cli as _cli_pkg
import zaas_edge.drivers as _drivers_pkg
from zaas_edge.cli import cli

for _mod in sorted(m.name for m in pkgutil.iter_modules(_cli_pkg.__path__) if m.name.endswith("_cmd")):
    importlib.import_module(f"zaas_edge.cli.{_mod}")

for _pkg in sorted(m.name for m in pkgutil.iter_modules(_drivers_pkg.__path__) if m.ispkg):
    if importlib.util.find_spec(f"zaas_edge.drivers.{_pkg}.cli") is not None:
        importlib.import_module(f"zaas_edge.drivers.{_pkg}.cli")

for _ep in entry_points(group="zaas_edge.cli"):
    _cmd = _ep.load()
    if isinstance(_cmd, click.Command) and _cmd.name not in cli.commands:
        cli.add_command(_cmd)
