"""Bluetooth Low Energy sensors.

Pure decoders: ``ruuvi`` (RuuviTag data format 5 from manufacturer data) and
``bthome`` (BTHome v2 service data through the bthome-ble library). The I/O
shell: ``scanner`` (the one module that uses bleak, behind the
``AdvertSource`` seam) and ``driver``.

``BleDriver`` and ``BleOptions`` are imported on first use: every CLI
invocation (``zaas-edge run`` included) imports this package for its ``ble``
commands, and the bthome-ble/habluetooth/bleak stack behind the driver costs
about 9 MB resident and 150 modules that a gateway without BLE never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["BleDriver", "BleOptions"]

if TYPE_CHECKING:
    from zaas_edge.drivers.ble.driver import BleDriver
    from zaas_edge.drivers.ble.options import BleOptions


def __getattr__(name: str) -> Any:
    if name == "BleDriver":
        from zaas_edge.drivers.ble.driver import BleDriver

        return BleDriver
    if name == "BleOptions":
        from zaas_edge.drivers.ble.options import BleOptions

        return BleOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
