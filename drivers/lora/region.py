"""EU868 regional parameters the join needs (LoRaWAN Regional Parameters, EU863-870), pure.

Only what answering a join request takes: data rate numbers and names, the
RX1 data rate for an RX1DROffset, the default RX2 channel, the join accept
delays and the three default channels a CFList does not repeat. The RX1
frequency in EU868 is the uplink's own.
"""

from __future__ import annotations

__all__ = [
    "JOIN_ACCEPT_DELAY1_US",
    "JOIN_ACCEPT_DELAY2_US",
    "RX2_FREQ_MHZ",
    "RX2_DR",
    "DOWNLINK_POWER_DBM",
    "DEFAULT_EXTRA_CHANNELS_MHZ",
    "datarate_of",
    "datr_of",
    "rx1_datr",
]

from zaas_edge.errors import ProtocolError

JOIN_ACCEPT_DELAY1_US = 5_000_000  # RX1 opens 5 s after the end of the join request
JOIN_ACCEPT_DELAY2_US = 6_000_000
RX2_FREQ_MHZ = 869.525
RX2_DR = 0
DOWNLINK_POWER_DBM = 14  # EU868 default max EIRP is 16 dBm; 14 leaves the antenna gain some room
# What most EU868 networks add after the three mandatory channels (868.1, 868.3, 868.5).
DEFAULT_EXTRA_CHANNELS_MHZ = (867.1, 867.3, 867.5, 867.7, 867.9)

# DR0..DR6 are LoRa; DR7 is FSK 50 kbit/s, which a join never uses here.
_LORA_DR = ("SF12BW125", "SF11BW125", "SF10BW125", "SF9BW125", "SF8BW125", "SF7BW125", "SF7BW250")


def datarate_of(datr: str | int) -> int:
    """The EU868 data rate number of a GWMP ``datr`` ("SF7BW125" is DR5)."""
    if isinstance(datr, str) and datr in _LORA_DR:
        return _LORA_DR.index(datr)
    raise ProtocolError(f"data rate {datr!r} is not an EU868 LoRa data rate (DR0..DR6)")


def datr_of(dr: int) -> str:
    if not 0 <= dr < len(_LORA_DR):
        raise ValueError(f"EU868 LoRa data rates are DR0..DR6, got DR{dr}")
    return _LORA_DR[dr]


def rx1_datr(uplink_datr: str | int, rx1_dr_offset: int = 0) -> str:
    """RX1 data rate in EU868: the uplink's data rate lowered by the offset, not below DR0."""
    if not 0 <= rx1_dr_offset <= 5:
        raise ValueError(f"EU868 RX1DROffset is 0..5, got {rx1_dr_offset}")
    return datr_of(max(0, datarate_of(uplink_datr) - rx1_dr_offset))
