"""The commented driver blocks of ``config/example.toml``, for the tests that keep them true.

Each driver's block is written as ``#   `` lines starting at its
``#   [[drivers]]``; a test takes it out, loads it as a technician who
uncomments it would, and checks it against the driver's options.
"""

from __future__ import annotations

__all__ = ["EXAMPLE", "driver_block", "load_driver_block"]

from pathlib import Path

from zaas_edge.config import load_config
from zaas_edge.driver import DriverOptions

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "example.toml"


def driver_block(driver_type: str) -> str:
    """The example block of ``driver_type``, without its ``#   `` prefix."""
    lines = EXAMPLE.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line == f'#   type = "{driver_type}"')
    start = max(i for i in range(at) if lines[i] == "#   [[drivers]]")
    block = []
    for line in lines[start:]:
        if not line.startswith("#   "):
            break
        block.append(line[4:])
    return "\n".join(block)


def load_driver_block(tmp_path: Path, driver_type: str) -> DriverOptions:
    """Load the block as the one driver of a configuration file, through the daemon's loader."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{tmp_path}"\n\n'
                   + driver_block(driver_type) + "\n")
    [opts] = load_config(cfg, environ={}).drivers
    return opts
