"""The ``[sync]`` configuration section."""

from __future__ import annotations

__all__ = ["SyncSection", "PolicyRule"]

from typing import Literal

from pydantic import Field

from zaas_edge.config_types import AbsPath, Section

# --- upload policies (zaas_edge.sync.policy, zaas_edge.sync.aggregate)
PolicyKind = Literal["raw", "deadband", "aggregate", "last"]


class PolicyRule(Section):
    """One ``[[sync.policies]]`` entry: the upload policy of the points it matches (first match wins)."""

    match: str = Field(default="*", min_length=1, description="Glob on the point key <device>/<quantity>")
    units: list[str] = Field(default_factory=list, description="Only points in these units; empty: any")
    policy: PolicyKind
    window_s: int | None = Field(default=None, ge=1, le=86400, description="Default: sync.window_s")
    deadband: float = Field(default=0.0, ge=0, description="deadband: change (in the point's unit) worth sending")
    heartbeat_s: int = Field(default=900, ge=1, le=86400, description="deadband: send at least this often")
# --- end of upload policies


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
        default="auto", description="auto: zstd for batches of 64 kB and more (before compression) "
                                    "when the platform offers it, else gzip")
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

    # --- upload policies and the local raw window (zaas_edge.sync.policy, zaas_edge.sync.aggregate)
    window_s: int = Field(default=60, ge=1, le=86400, description="Window of the default aggregate/last policies")
    default_policy: PolicyKind = Field(default="aggregate", description="Policy of points no rule matches")
    counter_policy: PolicyKind = Field(default="last",
                                       description="Policy of counters (kWh, Wh, m3...) no rule matches")
    policies: list[PolicyRule] = Field(default=[], description="Per point or per group of points")
    local_window_h: float = Field(default=4.0, gt=0, le=24 * 366,
                                  description="Hours of raw readings kept locally once aggregated "
                                              "(the store's size cap still rules)")
    aggregate_grace_s: float = Field(default=10.0, ge=0, le=3600,
                                     description="A window closes this long after its end, for late readings")
    aggregate_interval_s: float = Field(default=2.0, gt=0, le=600, description="How often new readings are aggregated")
    clock_hold_s: float = Field(default=900.0, ge=0, le=7 * 86400,
                                description="How long readings taken before clock synchronisation wait for it")
    # --- end of upload policies
