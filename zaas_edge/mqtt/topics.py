"""The topic scheme: ``zaas/v1/<site>/<gateway>/...`` and Home Assistant's discovery topics.

Every topic the gateway publishes or reads is spelled here, once, so the
README table, the tests and the broker ACLs all match one source.
"""

from __future__ import annotations

__all__ = ["Topics", "device_of", "safe_level", "VERSION_PREFIX"]

import re
from dataclasses import dataclass

VERSION_PREFIX = "zaas/v1"

_UNSAFE = re.compile(r"[+#/\x00]")


def safe_level(name: str) -> str:
    """One topic level from an id: MQTT wildcards, separators and NUL become ``_``."""
    return _UNSAFE.sub("_", name) or "_"


def device_of(point: str) -> str:
    """The device of a point key: the part before the first ``/``."""
    return point.partition("/")[0]


@dataclass(frozen=True, slots=True)
class Topics:
    site: str
    gateway: str
    discovery_prefix: str = "homeassistant"

    @property
    def base(self) -> str:
        return f"{VERSION_PREFIX}/{safe_level(self.site)}/{safe_level(self.gateway)}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    def device_state(self, device: str) -> str:
        return f"{self.base}/device/{safe_level(device)}/state"

    def availability(self, device: str) -> str:
        return f"{self.base}/device/{safe_level(device)}/availability"

    def alarm(self, alarm_id: str) -> str:
        return f"{self.base}/alarm/{safe_level(alarm_id)}"

    # -- commands: cmd/<kind>/<id>/set (and one-level targets, refused as unknown) --

    @property
    def command_filters(self) -> tuple[str, ...]:
        return (f"{self.base}/cmd/+/set", f"{self.base}/cmd/+/+/set")

    def command_state(self, target: str) -> str:
        return f"{self.base}/cmd/{target}/state"

    def command_target(self, topic: str) -> str | None:
        """``driver/meter-1`` for ``<base>/cmd/driver/meter-1/set``; None for any other topic."""
        prefix = f"{self.base}/cmd/"
        if not topic.startswith(prefix) or not topic.endswith("/set"):
            return None
        target = topic[len(prefix):-len("/set")]
        return target or None

    # -- Home Assistant -------------------------------------------------------------

    @property
    def ha_status(self) -> str:
        return f"{self.discovery_prefix}/status"

    @property
    def discovery_filter(self) -> str:
        return f"{self.discovery_prefix}/device/+/config"

    @property
    def object_prefix(self) -> str:
        """Prefix of every Home Assistant device and entity id this gateway owns."""
        return f"zaas_{safe_level(self.site)}_{safe_level(self.gateway)}_"

    @property
    def gateway_object_id(self) -> str:
        """The gateway's own Home Assistant device, which every other device names with ``via_device``
        (the prefix without its last ``_``, so no device id can take it)."""
        return self.object_prefix[:-1]

    def object_id(self, device: str) -> str:
        return f"{self.object_prefix}{safe_level(device)}"

    def discovery(self, device: str) -> str:
        return self.discovery_of(self.object_id(device))

    def discovery_of(self, obj: str) -> str:
        return f"{self.discovery_prefix}/device/{obj}/config"

    def discovered_device(self, topic: str) -> str | None:
        """The object id in a device discovery topic, when this gateway owns it."""
        prefix = f"{self.discovery_prefix}/device/"
        if not topic.startswith(prefix) or not topic.endswith("/config"):
            return None
        obj = topic[len(prefix):-len("/config")]
        ours = obj.startswith(self.object_prefix) or obj == self.gateway_object_id
        return obj if ours and "/" not in obj else None
