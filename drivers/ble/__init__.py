"""Bluetooth Low Energy sensors.

Pure decoders: ``ruuvi`` (RuuviTag data format 5 from manufacturer data) and
``bthome`` (BTHome v2 service data through the bthome-ble library). The I/O
shell: ``scanner`` (the one module that uses bleak, behind the
``AdvertSource`` seam) and ``driver``.
"""

from zaas_edge.drivers.ble.driver import BleDriver
from zaas_edge.drivers.ble.options import BleOptions

__all__ = ["BleDriver", "BleOptions"]
