"""The one module that talks to bleak: adverts in, ``Advert`` values out.

Below the driver sits a seam, ``AdvertSource``: anything whose ``stream()``
yields ``Advert`` values. ``BleakSource`` is the real one (BlueZ through
bleak); ``replay.ReplaySource`` plays recorded adverts for tests and
demos. Every bleak or D-Bus failure (no adapter, adapter unplugged or
powered off, BlueZ not running) becomes ``TransientError`` with a sentence a
technician can act on, so the driver retries on our error types only and an
upgrade of bleak touches this file alone.
"""

from __future__ import annotations

__all__ = ["Advert", "AdvertSource", "BleakSource", "adapter_present"]

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from zaas_edge.aio import wait_for
from zaas_edge.errors import TransientError

from .ruuvi import RUUVI_COMPANY_ID

SYS_BLUETOOTH = Path("/sys/class/bluetooth")
_QUEUE = 2000  # adverts waiting for the driver; beyond that the oldest news is dropped
_WATCH_S = 5.0  # how often a silent scanner checks that its adapter still exists

log = logging.getLogger("zaas_edge.ble")


@dataclass(frozen=True, slots=True)
class Advert:
    """One advertisement as heard: who, how loud, and its data fields."""

    mac: str  # "AA:BB:CC:DD:EE:FF"
    rssi: int | None = None
    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)
    service_data: Mapping[str, bytes] = field(default_factory=dict)  # full 128-bit UUID strings, lower case
    name: str | None = None
    at: float = 0.0  # monotonic seconds


class AdvertSource(Protocol):
    """Where adverts come from. ``stream()`` raises ``TransientError`` when the radio is unavailable."""

    def stream(self) -> AsyncIterator[Advert]: ...


def adapter_present(adapter: str, root: Path = SYS_BLUETOOTH) -> bool:
    return (root / adapter).exists()


def _or_patterns() -> list[Any]:
    # Passive scanning on BlueZ needs patterns: RuuviTag manufacturer data and BTHome service data.
    from bleak.args.bluez import OrPattern
    from bleak.assigned_numbers import AdvertisementDataType

    return [
        OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, RUUVI_COMPANY_ID.to_bytes(2, "little")),
        OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, bytes.fromhex("d2fc")),
    ]


class BleakSource:
    """Adverts from a BlueZ adapter through bleak."""

    def __init__(self, adapter: str = "hci0", scanning_mode: str = "passive") -> None:
        self.adapter = adapter
        self.scanning_mode = scanning_mode
        self.mode_in_use: str | None = None
        self.dropped = 0

    def _unavailable(self, exc: BaseException | None, doing: str) -> TransientError:
        if not adapter_present(self.adapter):
            return TransientError(
                f"Bluetooth adapter {self.adapter} not found (no {SYS_BLUETOOTH / self.adapter}): "
                "check the dongle or the built-in radio (rfkill list; bluetoothctl list)")
        detail = f"{type(exc).__name__}: {exc}" if exc is not None else "no detail"
        return TransientError(f"Bluetooth adapter {self.adapter} unavailable while {doing} ({detail}): "
                              "is bluetoothd running and the adapter powered (bluetoothctl power on)?")

    async def _start(self, queue: asyncio.Queue[Advert]) -> Any:
        from bleak import BleakScanner  # heavy: imported when scanning starts

        loop = asyncio.get_running_loop()

        def on_advert(device: Any, adv: Any) -> None:
            item = Advert(
                mac=str(device.address).upper(),
                rssi=getattr(adv, "rssi", None),
                manufacturer_data={int(k): bytes(v) for k, v in (adv.manufacturer_data or {}).items()},
                service_data={str(k).lower(): bytes(v) for k, v in (adv.service_data or {}).items()},
                name=adv.local_name,
                at=loop.time(),
            )
            if queue.full():
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait(item)

        modes = [self.scanning_mode] + (["active"] if self.scanning_mode == "passive" else [])
        last: BaseException | None = None
        for mode in modes:
            bluez: dict[str, Any] = {"adapter": self.adapter}
            if mode == "passive":
                bluez["or_patterns"] = _or_patterns()
            try:
                scanner = BleakScanner(on_advert, scanning_mode=mode, bluez=bluez)  # type: ignore[arg-type]
                await scanner.start()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # bleak, dbus-fast and OS errors alike: translated below
                last = exc
                if mode == "passive" and adapter_present(self.adapter):
                    log.warning("passive scanning refused on %s (%s); scanning actively instead "
                                "(BlueZ needs the experimental advertisement monitor for passive scans)",
                                self.adapter, exc, extra={"fields": {"adapter": self.adapter}})
                    continue
                break
            self.mode_in_use = mode
            return scanner
        raise self._unavailable(last, "starting the scan")

    async def stream(self) -> AsyncIterator[Advert]:
        queue: asyncio.Queue[Advert] = asyncio.Queue(_QUEUE)
        scanner = await self._start(queue)
        try:
            while True:
                try:
                    advert = await wait_for(queue.get(), _WATCH_S)
                except TimeoutError:
                    if not adapter_present(self.adapter):
                        raise self._unavailable(None, "scanning") from None
                    continue
                yield advert
        finally:
            try:
                await scanner.stop()
            except Exception:  # the adapter may be gone already: nothing left to stop
                pass
