"""The ``scan`` group: one command per bus or radio, added by each driver's CLI."""

from __future__ import annotations

__all__ = ["scan"]

from zaas_edge.cli import cli


@cli.group("scan")
def scan() -> None:
    """Find the devices on a bus or radio and suggest their configuration."""
