"""Recorded BLE adverts for the driver's ``AdvertSource`` seam, and sensors' test data.

The replay itself (``ReplaySource``, ``load_adverts``, the JSON-lines format)
lives in ``zaas_edge.drivers.ble.replay`` so that the daemon can use it when
``ZAAS_EDGE_BLE_REPLAY`` is set; it is re-exported here for tests and demos.
This module adds ``MissingAdapterSource`` (an adapter that is absent for the
first attempts) and ``bthome_encrypt``, which builds encrypted BTHome v2
adverts the way a sensor does (AES-CCM, 4-byte tag, nonce = MAC + UUID +
device info + counter), for test data made from the specification rather
than copied from elsewhere.
"""

from __future__ import annotations

__all__ = ["ReplaySource", "MissingAdapterSource", "load_adverts", "bthome_encrypt"]

from collections.abc import AsyncIterator

from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from zaas_edge.drivers.ble.replay import ReplaySource, load_adverts
from zaas_edge.drivers.ble.scanner import Advert

from zaas_edge.errors import TransientError


class MissingAdapterSource:
    """No adapter for the first ``failures`` attempts, then the adverts of ``then_source``."""

    def __init__(self, failures: int, then_source: ReplaySource | None = None, adapter: str = "hci0") -> None:
        self.failures = failures
        self.then_source = then_source
        self.adapter = adapter
        self.attempts = 0

    async def stream(self) -> AsyncIterator[Advert]:
        self.attempts += 1
        if self.attempts <= self.failures or self.then_source is None:
            raise TransientError(f"Bluetooth adapter {self.adapter} not found (no /sys/class/bluetooth/{self.adapter})")
        async for advert in self.then_source.stream():
            yield advert


def bthome_encrypt(plain: bytes, mac: str, bindkey: bytes, counter: int, device_info: int = 0x41) -> bytes:
    """The service data of an encrypted BTHome v2 advert carrying ``plain`` measurement objects."""
    count = counter.to_bytes(4, "little")
    nonce = bytes.fromhex(mac.replace(":", "")) + b"\xd2\xfc" + bytes([device_info]) + count
    sealed = AESCCM(bindkey, tag_length=4).encrypt(nonce, plain, None)
    return bytes([device_info]) + sealed[:-4] + count + sealed[-4:]
