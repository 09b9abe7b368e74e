"""The one module that talks to pymodbus: a link to a bus, and the errors it can raise.

Everything pymodbus does (clients, framers, exceptions, its logging) stays
behind ``Link``; the rest of the driver sees our error types only, so a
pymodbus upgrade (its API moves between minor versions) touches this file
alone. A ``Link`` is one connection: a TCP socket or a serial port, carrying
Modbus TCP (MBAP) or RTU frames. It sends one request at a time; the bus
discipline (how many links, who waits for whom) lives in ``bus.py``.

Error mapping:

* no answer within the timeout: ``NoResponse`` (transient);
* an answer that arrived garbled (RTU CRC mismatch): ``CrcError`` (protocol);
* an answer of the wrong shape (count, unit): ``BadResponse`` (protocol);
* a Modbus exception response: ``ExceptionResponse`` (permanent as asked;
  ``code`` 2 is "illegal data address", which the planner learns from);
* the port or endpoint cannot be opened: ``LinkDown`` (transient), with the
  reason in words (missing device, busy port, refused connection).

pymodbus logs every timeout at ERROR level; the driver reports changes of
state itself, so pymodbus's own logger is kept at CRITICAL unless the
gateway runs at debug level.
"""

from __future__ import annotations

__all__ = [
    "Link",
    "LinkSpec",
    "NoResponse",
    "CrcError",
    "BadResponse",
    "ExceptionResponse",
    "LinkDown",
    "EXCEPTION_NAMES",
]

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from zaas_edge.errors import PermanentError, ProtocolError, TransientError

from .plan import Table

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class NoResponse(TransientError):
    """The device did not answer within its timeout."""


class CrcError(ProtocolError):
    """An RTU answer arrived but its CRC (or framing) was wrong."""


class BadResponse(ProtocolError):
    """An answer that does not match its request (count, unit, function)."""


class ExceptionResponse(PermanentError):
    """The device answered with a Modbus exception."""

    def __init__(self, code: int, function: int, unit: int) -> None:
        self.code = code
        self.function = function
        self.unit = unit
        name = EXCEPTION_NAMES.get(code, "unknown exception")
        super().__init__(f"unit {unit} answered function {function} with exception {code:02d} ({name})")


class LinkDown(TransientError):
    """The serial port or TCP endpoint cannot be opened or was lost."""


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """Where a link goes and how frames look on it."""

    kind: Literal["tcp", "rtu", "rtu-over-tcp"]
    host: str = ""
    port: int | str = 502
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8
    connect_timeout_s: float = 3.0

    def describe(self) -> str:
        if self.kind == "rtu":
            return f"serial port {self.port}"
        return f"{self.host}:{self.port}"


_quiet_done = False


def _quiet_pymodbus() -> None:
    global _quiet_done
    if _quiet_done:
        return
    _quiet_done = True
    ours = logging.getLogger("zaas_edge")
    if ours.getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def _serial_problem(path: str) -> str:
    """Why a serial port cannot be opened, in words (pymodbus only says False)."""
    if not os.path.exists(path):
        return f"serial port {path} does not exist (is the USB adapter plugged in? ls /dev/serial/by-id/)"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"serial port {path}: permission denied (the service user must be in group dialout)"
    try:
        import serial

        s = serial.Serial(path, exclusive=True)
        s.close()
    except Exception as exc:  # pyserial raises SerialException/OSError/ValueError
        text = str(exc)
        if "lock" in text.lower() or "busy" in text.lower() or "exclusive" in text.lower():
            return f"serial port {path} is busy (another program holds it: fuser {path})"
        return f"serial port {path} cannot be opened: {text}"
    return f"serial port {path} could not be opened"


class Link:
    """One connection to a bus through pymodbus, one request at a time."""

    def __init__(self, spec: LinkSpec) -> None:
        _quiet_pymodbus()
        self.spec = spec
        self._client = None  # built lazily: needs a running loop
        self._rx = b""  # raw bytes received for the current request (CRC diagnosis)
        self.connects = 0

    # -- connection ---------------------------------------------------------------

    def _build(self):  # noqa: ANN202 (pymodbus types stay in this module)
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
        from pymodbus.framer import FramerType

        common = dict(
            reconnect_delay=0,  # the device poller retries with its own backoff
            reconnect_delay_max=0,
            timeout=self.spec.connect_timeout_s,
            retries=0,
            trace_packet=self._trace,
        )
        if self.spec.kind == "rtu":
            client = AsyncModbusSerialClient(
                str(self.spec.port), framer=FramerType.RTU, baudrate=self.spec.baudrate,
                bytesize=self.spec.bytesize, parity=self.spec.parity, stopbits=self.spec.stopbits, **common)
        else:
            framer = FramerType.SOCKET if self.spec.kind == "tcp" else FramerType.RTU
            client = AsyncModbusTcpClient(self.spec.host, port=int(self.spec.port), framer=framer, **common)
        # A silent unit must not make pymodbus drop a connection the other units use.
        client.set_max_no_responses(1_000_000)
        return client

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._rx = data
        return data

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        """Open the port or connection; ``LinkDown`` says why when it cannot."""
        if self.connected:
            return
        if self._client is None:
            self._client = self._build()
        ok = False
        try:
            self._client.ctx.comm_params.timeout_connect = self.spec.connect_timeout_s
            ok = await self._client.connect()
        except Exception as exc:  # pymodbus may raise from its transport
            raise LinkDown(f"{self.spec.describe()}: {exc}") from exc
        if not ok or not self._client.connected:
            self.close()
            if self.spec.kind == "rtu":
                raise LinkDown(_serial_problem(str(self.spec.port)))
            raise LinkDown(f"cannot connect to {self.spec.describe()} (refused, unreachable or timed out "
                           f"after {self.spec.connect_timeout_s:g} s)")
        self.connects += 1

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing a half-open serial port can raise; nothing to do about it
                pass
            self._client = None

    # -- requests -----------------------------------------------------------------

    async def _execute(self, call, unit: int, function: int, timeout: float):  # noqa: ANN001, ANN202
        from pymodbus.exceptions import ConnectionException, ModbusException

        await self.connect()
        assert self._client is not None
        self._client.ctx.comm_params.timeout_connect = timeout
        self._rx = b""
        try:
            response = await call(self._client)
        except ConnectionException as exc:
            self.close()
            raise LinkDown(f"{self.spec.describe()}: connection lost ({exc})") from exc
        except ModbusException as exc:
            if self._rx:
                raise CrcError(f"unit {unit}: answer with a bad CRC or framing ({len(self._rx)} bytes)") from exc
            if self._client is None or not self._client.connected:
                self.close()
                raise LinkDown(f"{self.spec.describe()}: connection lost") from exc
            raise NoResponse(f"unit {unit}: no answer within {timeout:g} s") from exc
        except (TimeoutError, OSError) as exc:
            self.close()
            raise LinkDown(f"{self.spec.describe()}: {exc}") from exc
        if response is None:
            raise NoResponse(f"unit {unit}: no answer within {timeout:g} s")
        if response.isError():
            code = getattr(response, "exception_code", 0)
            raise ExceptionResponse(int(code), function, unit)
        if response.dev_id not in (0, unit):
            raise BadResponse(f"asked unit {unit}, unit {response.dev_id} answered")
        return response

    async def read(self, unit: int, table: Table, start: int, count: int, timeout: float) -> list[int]:
        """Read ``count`` registers (or bits, as 0/1) of ``table`` from ``start``."""
        fc = int(table)
        if table is Table.HOLDING:
            call = lambda c: c.read_holding_registers(start, count=count, device_id=unit)  # noqa: E731
        elif table is Table.INPUT:
            call = lambda c: c.read_input_registers(start, count=count, device_id=unit)  # noqa: E731
        elif table is Table.COILS:
            call = lambda c: c.read_coils(start, count=count, device_id=unit)  # noqa: E731
        else:
            call = lambda c: c.read_discrete_inputs(start, count=count, device_id=unit)  # noqa: E731
        response = await self._execute(call, unit, fc, timeout)
        if table.is_bits:
            bits = list(response.bits)
            if len(bits) < count:
                raise BadResponse(f"unit {unit}: asked {count} bits at {start}, got {len(bits)}")
            return [1 if b else 0 for b in bits[:count]]
        regs = list(response.registers)
        if len(regs) != count:
            raise BadResponse(f"unit {unit}: asked {count} registers at {start}, got {len(regs)}")
        return regs

    async def write_registers(self, unit: int, address: int, values: Sequence[int], timeout: float) -> None:
        """Write holding registers: function 6 for one, 16 for several."""
        vals = [int(v) for v in values]
        if len(vals) == 1:
            await self._execute(lambda c: c.write_register(address, vals[0], device_id=unit), unit, 6, timeout)
        else:
            await self._execute(lambda c: c.write_registers(address, vals, device_id=unit), unit, 16, timeout)

    async def write_coil(self, unit: int, address: int, value: bool, timeout: float) -> None:
        """Write one coil (function 5)."""
        await self._execute(lambda c: c.write_coil(address, bool(value), device_id=unit), unit, 5, timeout)
