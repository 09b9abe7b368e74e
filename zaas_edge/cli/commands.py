"""Imports every command module so each registers its commands on ``cli``."""

from zaas_edge.cli import (  # noqa: F401
    buffer_cmd,
    config_cmd,
    daemon_cmd,
)
