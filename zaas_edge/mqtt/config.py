"""The ``[mqtt]`` configuration section."""

from __future__ import annotations

__all__ = ["MqttSection"]

from pydantic import Field

from zaas_edge.config_model import SecretFile, Section


class MqttSection(Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_file: SecretFile | None = None
