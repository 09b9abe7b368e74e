"""The ``[sync]`` configuration section."""

from __future__ import annotations

__all__ = ["SyncSection"]

from zaas_edge.config_model import Section


class SyncSection(Section):
    enabled: bool = False
