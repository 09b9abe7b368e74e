"""The ``[sync]`` configuration section."""

from __future__ import annotations

__all__ = ["SyncSection"]

from typing import Literal

from pydantic import Field

from zaas_edge.config_model import AbsPath, Section


class SyncSection(Section):
    enabled: bool = False

    # --- transport: where to, who we are, how hard to push (zaas_edge.sync.uplink/service)
    url: str | None = Field(default=None, pattern=r"^https://[^\s]+$",
                            description="Base URL of the central API (https only)")
    identity_dir: AbsPath | None = Field(default=None, description="Default: <state_dir>/identity")
    ca_file: AbsPath | None = Field(default=None, description="Pinned platform CA; default <identity_dir>/ca.pem")
    config_key_file: AbsPath | None = Field(
        default=None, description="Pinned public key that signs configuration bundles; "
                                  "default <identity_dir>/config-signing.pem (from enrollment)")
    compression: Literal["auto", "gzip", "zstd"] = Field(
        default="auto", description="auto: zstd when the platform offers it, else gzip")
    batch_initial_bytes: int = Field(default=16 * 1024, ge=256, le=256 * 1024)
    batch_max_bytes: int = Field(default=256 * 1024, ge=1024, le=256 * 1024,
                                 description="Ceiling of a batch, compressed")
    bandwidth_limit_bytes_s: int = Field(default=0, ge=0, description="Upload cap in bytes/s; 0: none")
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    request_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    backoff_initial_s: float = Field(default=1.0, gt=0, le=600)
    backoff_max_s: float = Field(default=300.0, gt=0, le=86400)
    idle_interval_s: float = Field(default=5.0, gt=0, le=3600,
                                   description="How often an empty lane is looked at again")
    clock_skew_alarm_s: float = Field(default=300.0, gt=0, description="Skew against the server's Date")
    renew: bool = Field(default=True, description="Renew the certificate at two-thirds of its life")
    config_pull_interval_s: float = Field(default=3600.0, ge=0, description="0: never pull the config bundle")
    # --- end of transport keys
