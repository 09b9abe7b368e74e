"""LoRaWAN through Semtech UDP packet forwarders.

Pure codecs: ``gwmp`` speaks the forwarder protocol, ``lorawan`` parses,
checks and decrypts LoRaWAN 1.0.x frames, ``fcnt`` rebuilds 32-bit frame
counters and rejects replays, ``dedup`` merges copies heard by several
gateways, ``payloads`` decodes vendors' application payloads. The I/O shell:
``server`` (the UDP server), ``keys`` (the 0600 ABP keys file) and ``driver``.
"""

from zaas_edge.drivers.lora.driver import LoraDriver
from zaas_edge.drivers.lora.options import LoraOptions

__all__ = ["LoraDriver", "LoraOptions"]
