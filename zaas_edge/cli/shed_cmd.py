"""``zaas-edge shed``: load shedding, live and simulated.

``status`` and ``override`` ask the running daemon over the control socket;
``simulate`` (``zaas_edge.cli.shed_simulate_cmd``) runs the same engine in a
closed loop against a scenario file or the store's history, with no daemon.
"""

from __future__ import annotations

__all__ = ["shed_group"]


from zaas_edge.cli import cli


@cli.group("shed")
def shed_group() -> None:
    """Load shedding: what the engine does now, overrides, and simulations."""
