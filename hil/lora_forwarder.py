"""A simulated Semtech UDP packet forwarder with simulated LoRaWAN devices.

It speaks GWMP to a network server over real UDP: PUSH_DATA carrying rxpk
with properly encrypted and MIC-signed uplinks (``lorawan.build_data_frame``),
PULL_DATA keepalives and ``stat`` reports, and it checks the server's
PUSH_ACK / PULL_ACK tokens. One simulator can play several gateways (each
with its own EUI, socket and RSSI), so the same frame reaches the server
several times as it does in a building with overlapping coverage; on request
it replays an old frame or spoils a MIC.

OTAA: ``SimOtaaDevice`` sends join requests and reads the join accept the
way a device does (AES encrypt, MIC check, key derivation), then sends data
frames with the session it got. Like a real forwarder, each gateway has a
second socket for PULL_DATA; the server's PULL_RESP arrives there, is
answered with TX_ACK and kept for the test (``SimForwarder.join``).

From a shell, for commissioning practice::

    python -m hil.lora_forwarder --port 1700 --keys-file /tmp/lora-keys.toml

creates the keys file with three demo devices (if absent) and sends their
uplinks every few seconds to 127.0.0.1:1700.
"""

from __future__ import annotations

__all__ = ["SimDevice", "SimOtaaDevice", "SimGateway", "SimForwarder", "Downlink", "DEMO_DEVICES",
           "em300_di_payload", "am103_payload", "em300_sld_payload"]

import argparse
import asyncio
import base64
import json
import os
import struct
import sys
from dataclasses import dataclass, field
from typing import Any

from zaas_edge.drivers.lora import gwmp, join, lorawan
from zaas_edge.drivers.lora.keys import DeviceKeys, load_keys, save_keys


def em300_di_payload(pulses: int, battery: int = 92) -> bytes:
    """A Milesight EM300-DI report: battery and pulse counter, FPort 85."""
    return bytes([0x01, 0x75, battery, 0x05, 0xC8]) + pulses.to_bytes(4, "little")


def em300_sld_payload(leak: bool, temperature: float = 21.5, battery: int = 90) -> bytes:
    return (bytes([0x01, 0x75, battery, 0x03, 0x67]) + struct.pack("<h", round(temperature * 10))
            + bytes([0x05, 0x00, 1 if leak else 0]))


def am103_payload(temperature: float, humidity: float, co2: int, battery: int = 100) -> bytes:
    return (bytes([0x01, 0x75, battery, 0x03, 0x67]) + struct.pack("<h", round(temperature * 10))
            + bytes([0x04, 0x68, round(humidity * 2), 0x07, 0x7D]) + co2.to_bytes(2, "little"))


@dataclass
class SimDevice:
    """An ABP end device that remembers its frame counter and its last frame (for replays)."""

    keys: DeviceKeys
    fcnt: int = 0
    fport: int = 85
    sent: list[bytes] = field(default_factory=list)

    def uplink(self, payload: bytes, *, bad_mic: bool = False, fcnt: int | None = None) -> bytes:
        fcnt32 = self.fcnt if fcnt is None else fcnt
        frame = lorawan.build_data_frame(dev_addr=self.keys.dev_addr, fcnt32=fcnt32, fport=self.fport,
                                         payload=payload, nwk_skey=self.keys.nwk_skey, app_skey=self.keys.app_skey)
        if fcnt is None:
            self.fcnt += 1
        if bad_mic:
            frame = frame[:-4] + bytes(b ^ 0xFF for b in frame[-4:])
        else:
            self.sent.append(frame)
        return frame


@dataclass
class SimOtaaDevice:
    """An OTAA end device: root keys, DevNonces it used, and once joined a ``SimDevice`` for its session."""

    id: str
    dev_eui: bytes
    app_eui: bytes
    app_key: bytes
    profile: str = "milesight-am103"
    dev_nonce: int = 0x0100  # the last DevNonce drawn (a counter, as LoRaWAN 1.0.4 devices use)
    last_nonce: int = 0  # the DevNonce of the last join request sent
    session: SimDevice | None = None
    accept: join.JoinAcceptFields | None = None

    @property
    def keys(self) -> DeviceKeys:
        """The keys file entry before any join."""
        return DeviceKeys(self.id, None, None, None, self.profile, self.dev_eui, self.app_eui, self.app_key)

    def join_request(self, dev_nonce: int | None = None, *, bad_mic: bool = False) -> bytes:
        if dev_nonce is None:
            self.dev_nonce += 1
            dev_nonce = self.dev_nonce
        frame = join.build_join_request(self.app_key, self.app_eui, self.dev_eui, dev_nonce)
        self.last_nonce = dev_nonce
        return frame[:-4] + bytes(b ^ 0xFF for b in frame[-4:]) if bad_mic else frame

    def on_join_accept(self, phy: bytes) -> SimDevice:
        """Decrypt the accept (``ProtocolError`` if it is not for this device) and start the session."""
        fields = join.open_join_accept(self.app_key, phy)
        nwk, app = join.derive_session_keys(self.app_key, fields.app_nonce, fields.net_id, self.last_nonce)
        self.accept = fields
        self.session = SimDevice(DeviceKeys(self.id, fields.dev_addr, nwk, app, self.profile))
        return self.session


@dataclass(frozen=True, slots=True)
class Downlink:
    """A PULL_RESP as a gateway received it."""

    gateway: bytes
    token: bytes
    txpk: gwmp.TxPacket


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, eui: bytes = bytes(8), downlinks: asyncio.Queue[Downlink] | None = None) -> None:
        self.acks: asyncio.Queue[bytes] = asyncio.Queue()
        self.eui = eui
        self.downlinks = downlinks
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) >= 4 and data[3] == gwmp.Identifier.PULL_RESP and self.downlinks is not None:
            msg = gwmp.parse_datagram(data)
            assert isinstance(msg, gwmp.PullResp)
            self.downlinks.put_nowait(Downlink(self.eui, msg.token, msg.txpk))
            if self.transport is not None:  # TX_ACK: sent (the simulator has no radio to refuse it)
                self.transport.sendto(bytes([gwmp.PROTOCOL_VERSION]) + msg.token
                                      + bytes([gwmp.Identifier.TX_ACK]) + self.eui
                                      + b'{"txpk_ack":{"error":"NONE"}}')
            return
        self.acks.put_nowait(data)


@dataclass
class SimGateway:
    """One forwarder: an EUI, a UDP socket and the signal it hears devices with."""

    eui: bytes
    rssi: float = -80.0
    snr: float = 7.5
    version: int = gwmp.PROTOCOL_VERSION
    _endpoint: _Endpoint | None = None
    _pull: _Endpoint | None = None  # the PULL_DATA socket, where downlinks arrive
    _token: int = 0
    tmst: int = 1_000_000

    def next_token(self) -> bytes:
        self._token = (self._token + 1) & 0xFFFF
        return self._token.to_bytes(2, "big")


class SimForwarder:
    """Several simulated gateways sending to one server address."""

    def __init__(self, host: str, port: int, gateways: list[SimGateway] | None = None, *,
                 local_host: str | None = None) -> None:
        self.host, self.port = host, port
        self.local_host = local_host  # send from this address (another loopback one plays another host)
        self.gateways = gateways or [SimGateway(bytes.fromhex("AA555A0000000001"))]
        self.acks_missing = 0
        self.downlinks: asyncio.Queue[Downlink] = asyncio.Queue()
        self.rx_tmst: dict[bytes, int] = {}  # gateway EUI -> tmst of the last packet it forwarded

    async def __aenter__(self) -> SimForwarder:
        loop = asyncio.get_running_loop()
        local = None if self.local_host is None else (self.local_host, 0)
        for gw in self.gateways:
            _, proto = await loop.create_datagram_endpoint(_Endpoint, remote_addr=(self.host, self.port),
                                                           local_addr=local)
            gw._endpoint = proto
            _, pull = await loop.create_datagram_endpoint(lambda gw=gw: _Endpoint(gw.eui, self.downlinks),
                                                          remote_addr=(self.host, self.port), local_addr=local)
            gw._pull = pull
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for gw in self.gateways:
            for ep in (gw._endpoint, gw._pull):
                if ep and ep.transport:
                    ep.transport.close()

    async def _send(self, gw: SimGateway, data: bytes, expect: gwmp.Identifier | None, timeout: float) -> bool:
        assert gw._endpoint is not None and gw._endpoint.transport is not None
        gw._endpoint.transport.sendto(data)
        if expect is None:
            return True
        try:
            ack = await asyncio.wait_for(gw._endpoint.acks.get(), timeout)
        except TimeoutError:
            self.acks_missing += 1
            return False
        msg = gwmp.parse_datagram(ack)
        ok = msg.identifier is expect and msg.token == data[1:3] and msg.version == data[0]
        if not ok:
            raise AssertionError(f"server answered {msg!r} to token {data[1:3].hex()}")
        return True

    def push_data(self, gw: SimGateway, frames: list[bytes] = (), stat: dict[str, Any] | None = None,  # type: ignore[assignment]
                  token: bytes | None = None) -> bytes:
        rxpk = []
        for frame in frames:
            gw.tmst = (gw.tmst + 1_000_000) & 0xFFFFFFFF
            self.rx_tmst[gw.eui] = gw.tmst
            rxpk.append({"tmst": gw.tmst, "chan": 2, "rfch": 0, "freq": 868.5, "stat": 1, "modu": "LORA",
                         "datr": "SF7BW125", "codr": "4/5", "rssi": gw.rssi, "lsnr": gw.snr, "size": len(frame),
                         "data": base64.b64encode(frame).decode("ascii")})
        body: dict[str, Any] = {}
        if rxpk:
            body["rxpk"] = rxpk
        if stat is not None:
            body["stat"] = stat
        return (bytes([gw.version]) + (token or gw.next_token()) + bytes([gwmp.Identifier.PUSH_DATA]) + gw.eui
                + json.dumps(body, separators=(",", ":")).encode())

    async def uplink(self, frame: bytes, *, gateways: list[SimGateway] | None = None, timeout: float = 2.0) -> bool:
        """Send one frame through each gateway (all of them by default): duplicates as in a real building."""
        ok = True
        for gw in gateways or self.gateways:
            ok &= await self._send(gw, self.push_data(gw, [frame]), gwmp.Identifier.PUSH_ACK, timeout)
        return ok

    async def stat(self, gw: SimGateway | None = None, timeout: float = 2.0, **fields: Any) -> bool:
        gw = gw or self.gateways[0]
        stat = {"time": "2024-01-01 00:00:00 GMT", "rxnb": 2, "rxok": 2, "rxfw": 2, "ackr": 100.0,
                "dwnb": 0, "txnb": 0, **fields}
        return await self._send(gw, self.push_data(gw, stat=stat), gwmp.Identifier.PUSH_ACK, timeout)

    async def pull_data(self, gw: SimGateway | None = None, timeout: float = 2.0) -> bool:
        """A PULL_DATA keepalive from the gateway's downlink socket (``serv_port_down``)."""
        gw = gw or self.gateways[0]
        data = bytes([gw.version]) + gw.next_token() + bytes([gwmp.Identifier.PULL_DATA]) + gw.eui
        assert gw._pull is not None and gw._pull.transport is not None
        gw._pull.transport.sendto(data)
        try:
            ack = await asyncio.wait_for(gw._pull.acks.get(), timeout)
        except TimeoutError:
            self.acks_missing += 1
            return False
        msg = gwmp.parse_datagram(ack)
        if not (msg.identifier is gwmp.Identifier.PULL_ACK and msg.token == data[1:3]):
            raise AssertionError(f"server answered {msg!r} to PULL_DATA token {data[1:3].hex()}")
        return True

    async def join(self, device: SimOtaaDevice, *, gateways: list[SimGateway] | None = None,
                   timeout: float = 5.0, request: bytes | None = None) -> Downlink:
        """Send a join request through the gateways, wait for the PULL_RESP, open the accept as the device."""
        await self.uplink(request or device.join_request(), gateways=gateways)
        down = await asyncio.wait_for(self.downlinks.get(), timeout)
        device.on_join_accept(down.txpk.payload)
        return down

    async def raw(self, data: bytes, gw: SimGateway | None = None) -> None:
        """Send any bytes (garbage, truncated or oversize datagrams) and expect no answer."""
        await self._send(gw or self.gateways[0], data, None, 0)


DEMO_DEVICES = [
    DeviceKeys("water-1", 0x26011BDA, bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C"),
               bytes.fromhex("3C4FCF098815F7ABA6D2AE2816157E2B"), "milesight-em300-di"),
    DeviceKeys("leak-1", 0x26011BDB, bytes.fromhex("000102030405060708090A0B0C0D0E0F"),
               bytes.fromhex("F0E0D0C0B0A090807060504030201000"), "milesight-em300-sld"),
    DeviceKeys("climate-1", 0x26011BDC, bytes.fromhex("11111111111111111111111111111111"),
               bytes.fromhex("22222222222222222222222222222222"), "milesight-am103"),
]


def _demo_payload(profile: str, n: int) -> bytes:
    if profile == "milesight-em300-di":
        return em300_di_payload(1000 + 7 * n)
    if profile == "milesight-em300-sld":
        return em300_sld_payload(n % 5 == 4)
    if profile == "milesight-am103":
        return am103_payload(21.0 + (n % 10) / 10, 45.0, 600 + 10 * n)
    return b"\x01\x75\x64"  # battery only: every Milesight profile knows it


async def _practice(host: str, port: int, keys_file: str | None, interval: float, count: int) -> int:
    devices = DEMO_DEVICES
    if keys_file:
        if not os.path.exists(keys_file):
            save_keys(keys_file, DEMO_DEVICES)
            print(f"wrote {keys_file} with {len(DEMO_DEVICES)} demo devices (mode 0600)")
        devices = list(load_keys(keys_file).devices)
    sims = [SimDevice(k) for k in devices]
    gateways = [SimGateway(bytes.fromhex("AA555A0000000001"), -70.0, 9.0),
                SimGateway(bytes.fromhex("AA555A0000000002"), -95.0, 2.0)]
    async with SimForwarder(host, port, gateways) as fwd:
        n = 0
        while count == 0 or n < count:
            for gw in gateways:
                await fwd.pull_data(gw)
                await fwd.stat(gw)
            for sim in sims:
                payload = _demo_payload(sim.keys.profile, n)
                ok = await fwd.uplink(sim.uplink(payload))
                print(f"{sim.keys.id} fcnt {sim.fcnt - 1}: {'acked' if ok else 'no PUSH_ACK'}", flush=True)
            n += 1
            await asyncio.sleep(interval)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.lora_forwarder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1700)
    parser.add_argument("--keys-file", help="keys file to read devices from (created with demo devices if absent)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between rounds")
    parser.add_argument("--count", type=int, default=0, help="rounds to send (0: until interrupted)")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("the simulator only sends to the loopback interface")
    try:
        return asyncio.run(_practice(args.host, args.port, args.keys_file, args.interval, args.count))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
