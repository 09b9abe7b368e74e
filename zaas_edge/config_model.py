"""The typed configuration: what each key means, its type and its default.

Loading, merging drop-ins and turning validation errors into messages a
technician can act on live in ``zaas_edge.config``.
"""

from __future__ import annotations

__all__ = [
    "Config",
    "GatewaySection",
    "LogSection",
    "StoreSection",
    "RuntimeSection",
    "ControlSection",
    "ClockSection",
    "MqttSection",
    "SyncSection",
    "AlarmsSection",
    "Section",
    "SecretFile",
    "SECRET_FILE",
    "SecretFileMarker",
]

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from zaas_edge.config_types import SECRET_FILE, AbsPath, SecretFile, SecretFileMarker, Section
from zaas_edge.driver import ID_PATTERN
from zaas_edge.mqtt.config import MqttSection
from zaas_edge.rules.alarms.config import AlarmsSection
from zaas_edge.rules.config import SheddingConfig
from zaas_edge.sync.config import SyncSection


class GatewaySection(Section):
    id: str = Field(default="gw-demo", pattern=ID_PATTERN, description="Gateway id, unique in the park")
    site: str = Field(default="site", pattern=ID_PATTERN, description="Site (building) id")
    state_dir: AbsPath = Field(default=Path("/var/lib/zaas-edge"), description="Store and keys")
    runtime_dir: AbsPath = Field(default=Path("/run/zaas-edge"), description="Control socket")


class LogSection(Section):
    level: Literal["debug", "info", "notice", "warning", "error"] = "info"
    format: Literal["auto", "journal", "text"] = Field(
        default="auto", description="auto: journal prefixes when JOURNAL_STREAM is set"
    )


class StoreSection(Section):
    max_size_mb: int = Field(default=1024, ge=8, le=1_000_000)
    flush_interval_ms: int = Field(default=250, ge=10, le=10_000)
    flush_rows: int = Field(default=5000, ge=1, le=100_000)
    synchronous: Literal["full", "normal"] = Field(
        default="full", description="full: committed rows survive power loss; normal: only a crash"
    )
    memory_ring_rows: int = Field(default=100_000, ge=1000, le=10_000_000)
    retry_interval_s: float = Field(default=5.0, gt=0, le=3600)


class RuntimeSection(Section):
    restart_backoff_initial_s: float = Field(default=1.0, gt=0, le=60)
    restart_backoff_max_s: float = Field(default=60.0, gt=0, le=3600)
    stop_timeout_s: float = Field(default=4.0, gt=0, le=30)
    heartbeat_timeout_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="A critical task silent for longer stops the systemd watchdog",
    )


class ControlSection(Section):
    socket: AbsPath | None = Field(default=None, description="Default: <runtime_dir>/control.sock")
    mode: int = Field(default=0o660, ge=0, le=0o777)


class ClockSection(Section):
    assume_synced: bool | None = Field(
        default=None, description="Override the kernel's synchronised flag (tests, boxes with an RTC)"
    )




class Config(Section):
    gateway: GatewaySection = GatewaySection()
    log: LogSection = LogSection()
    store: StoreSection = StoreSection()
    runtime: RuntimeSection = RuntimeSection()
    control: ControlSection = ControlSection()
    clock: ClockSection = ClockSection()
    mqtt: MqttSection = MqttSection()
    sync: SyncSection = SyncSection()
    shedding: SheddingConfig = SheddingConfig()
    alarms: AlarmsSection = AlarmsSection()
    # Each entry is validated again against its driver's own Options model.
    drivers: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def control_socket(self) -> Path:
        return self.control.socket or self.gateway.runtime_dir / "control.sock"

    @property
    def store_path(self) -> Path:
        return self.gateway.state_dir / "store.sqlite"
