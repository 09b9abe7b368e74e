"""The ``[mqtt]`` configuration section."""

from __future__ import annotations

__all__ = ["MqttSection", "PointPolicy"]

from typing import Literal

from pydantic import Field, model_validator

from zaas_edge.config_types import AbsPath, SecretFile, Section


class PointPolicy(Section):
    """When a point is worth a state message: a deadband and two intervals.

    Any key left unset takes the ``[mqtt]`` default of the same name.
    """

    deadband_pct: float | None = Field(default=None, ge=0, le=100)
    deadband_abs: float | None = Field(default=None, ge=0)
    min_interval_s: float | None = Field(default=None, ge=0, le=86_400)
    max_interval_s: float | None = Field(default=None, gt=0, le=86_400)


class MqttSection(Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    socket: AbsPath | None = Field(default=None, description="Unix socket of the broker; replaces host and port")
    tls: bool = False
    ca_file: AbsPath | None = Field(default=None, description="CA bundle for TLS (default: the system's)")
    cert_file: AbsPath | None = Field(default=None,
                                      description="Client certificate (PEM) for brokers that ask; turns TLS on")
    key_file: SecretFile | None = Field(default=None, description="Private key of cert_file (PEM, mode 0600)")
    username: str | None = None
    password_file: SecretFile | None = None
    client_id: str | None = Field(default=None, min_length=1, max_length=64,
                                  description="Default: zaas-edge-<site>-<gateway>")
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(default=3600, ge=0, le=7 * 86_400)
    reconnect_initial_s: float = Field(default=1.0, gt=0, le=60)
    reconnect_max_s: float = Field(default=60.0, gt=0, le=3600)
    # State publication
    deadband_pct: float = Field(default=0.5, ge=0, le=100)
    deadband_abs: float = Field(default=0.0, ge=0)
    min_interval_s: float = Field(default=1.0, ge=0, le=86_400)
    max_interval_s: float = Field(default=300.0, gt=0, le=86_400)
    coalesce_ms: int = Field(default=100, ge=0, le=10_000)
    availability_timeout_s: float = Field(default=120.0, gt=0, le=86_400)
    points: dict[str, PointPolicy] = Field(default={})  # copied per instance by pydantic
    # Home Assistant
    discovery: bool = True
    discovery_prefix: str = Field(default="homeassistant", pattern=r"^[A-Za-z0-9_-]+$")
    discovery_settle_s: float = Field(default=60.0, ge=0, le=3600)
    # Commands
    command_rate_per_min: float = Field(default=12.0, gt=0, le=6000)
    command_burst: int = Field(default=5, ge=1, le=1000)
    # Every command topic together, counted before any parsing: past it a message is dropped unanswered.
    command_intake_per_s: float = Field(default=10.0, gt=0, le=10_000)
    command_intake_burst: int = Field(default=50, ge=1, le=100_000)

    @model_validator(mode="after")
    def _intervals(self) -> MqttSection:
        if self.min_interval_s > self.max_interval_s:
            raise ValueError(f"min_interval_s ({self.min_interval_s}) must not exceed max_interval_s "
                             f"({self.max_interval_s})")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both for a client certificate, or neither")
        if self.reconnect_initial_s > self.reconnect_max_s:
            raise ValueError("reconnect_initial_s must not exceed reconnect_max_s")
        return self
