"""The one module that talks to pymodbus: a link to a bus, and the errors it can raise.

Everything pymodbus does (clients, framers, exceptions, its logging) stays
behind ``Link``; the rest of the driver sees our error types only, so a
pymodbus upgrade (its API moves between minor versions) touches this file
alone. A ``Link`` is one connection: a TCP socket or a serial port, carrying
Modbus TCP (MBAP) or RTU frames. It sends one request at a time; the bus
discipline (how many links, who waits for whom, when the line is quiet enough
to talk after a failure) lives in ``bus.py``.

RTU frames carry no transaction id, so on a serial line (and RTU over TCP) an
answer is matched to its request by unit id and function code alone. A meter
that answers after its timeout puts a stray frame on the line, which would
otherwise be taken for (or garble) the answer to the next request, to another
unit. ``Link`` therefore frames RTU itself (``_LineFramer``, in place of
pymodbus's RTU framer, which discards the whole receive buffer when it meets a
frame for another unit or a bad CRC, swallowing the real answer behind it):

* a complete frame with a valid CRC whose unit id or function code does not
  match the request in flight (or that arrives with no request in flight) is
  discarded, counted in ``stray_frames``, and the wait for the real answer
  goes on until the timeout;
* bytes that do not form a frame are skipped one at a time while hunting for
  a valid frame behind them, and if none comes they make the failure a
  ``CrcError`` rather than a ``NoResponse``;
* ``last_rx`` says when the last byte arrived and ``discard_input()`` drops
  everything received but not yet used (pymodbus's buffer, a partial frame,
  the serial driver's input queue), so the bus can wait for the line to go
  quiet after a failure and start the next exchange clean.

Error mapping:

* no answer within the timeout: ``NoResponse`` (transient);
* an answer that arrived garbled (RTU CRC mismatch): ``CrcError`` (protocol);
* an answer of the wrong shape (count, unit, function): ``BadResponse``
  (protocol); on RTU links frames for another unit or function never get this
  far: they are stray frames, discarded while the wait goes on;
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
import time
from collections.abc import Callable, Sequence
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


def _line_framer(decoder):  # noqa: ANN001, ANN202 (pymodbus types stay in this module)
    """An RTU framer that keeps the real answer when a stray frame or noise comes first."""
    from pymodbus.framer import FramerRTU

    class _LineFramer(FramerRTU):
        """Frames RTU answers for one request at a time; see the module docstring.

        ``handleFrame`` receives pymodbus's whole receive buffer each time bytes
        arrive and returns how many bytes it used and the answer, if complete.
        """

        def __init__(self, dec) -> None:  # noqa: ANN001
            super().__init__(dec)
            self.expect: tuple[int, int] | None = None  # (unit, function) of the request in flight
            self.stray_frames = 0
            self.pending = 0  # bytes held that are not (yet) a frame

        def begin(self, unit: int, function: int) -> None:
            self.expect = (unit, function)
            self.pending = 0

        def end(self) -> None:
            self.expect = None

        def _next_frame(self, data: bytes, pos: int) -> tuple[int, int] | None:
            """(start, size) of the first complete frame with a valid CRC at or after ``pos``."""
            for start in range(pos, len(data) - self.MIN_SIZE + 1):
                try:
                    cls = self.decoder.lookupPduClass(data[start:])
                    size = cls.calculateRtuFrameSize(data[start:]) if cls is not None else 0
                except Exception:  # an unknown or malformed function byte: not a frame start
                    continue
                if not size or start + size > len(data):
                    continue  # not a frame, or not complete yet: a later start may be
                crc = (data[start + size - 2] << 8) | data[start + size - 1]
                if self.check_CRC(data[start:start + size - 2], crc):
                    return start, size
            return None

        def handleFrame(self, data: bytes, exp_devid: int, exp_tid: int):  # noqa: ANN201, N802
            used = 0
            while (found := self._next_frame(data, used)) is not None:
                start, size = found
                used = start + size
                unit, function = data[start], data[start + 1]
                if self.expect is None or unit != self.expect[0] or (function & 0x7F) != self.expect[1]:
                    self.stray_frames += 1  # a late answer, or one for another master's request
                    continue
                pdu = self.decoder.decode(data[start + 1:start + size - 2])
                if pdu is None:
                    self.stray_frames += 1
                    continue
                pdu.dev_id = unit
                pdu.transaction_id = 0
                self.pending = len(data) - used
                return used, pdu
            self.pending = len(data) - used
            return used, None

    return _LineFramer(decoder)


def _socket_framer(decoder, on_bad: Callable[[str], None]):  # noqa: ANN001, ANN202 (pymodbus types stay here)
    """A Modbus TCP framer that takes an answer it cannot decode for what it is: a bad response.

    pymodbus's own raises ``ModbusIOException`` from inside ``data_received`` when a frame is
    MBAP-consistent but its PDU does not decode (a byte count that disagrees with the data): the
    exception escapes into asyncio's default handler (a multi-line traceback) and the connection
    is dropped, so one misbehaving device gave a traceback and a reconnect per poll. Here the
    frame is consumed whole (the MBAP length says where it ends), counted, and the request in
    flight fails at once through ``on_bad``; the connection stays up.
    """
    from pymodbus.framer import FramerSocket

    class _TcpFramer(FramerSocket):
        def __init__(self, dec) -> None:  # noqa: ANN001
            super().__init__(dec)
            self.stray_frames = 0
            self.bad_frames = 0
            self.pending = 0

        def begin(self, unit: int, function: int) -> None:
            pass

        def end(self) -> None:
            pass

        def handleFrame(self, data: bytes, exp_devid: int, exp_tid: int):  # noqa: ANN201, N802
            used = 0
            while used < len(data):
                size, dev_id, tid, frame = self.decode(data[used:])
                if not size:
                    return used, None  # incomplete (or a bad protocol id, dropped by discard_input)
                used += size
                if not frame:
                    return used, None
                if (exp_devid and dev_id != exp_devid) or (exp_tid and tid and tid != exp_tid):
                    self.stray_frames += 1  # a late answer to an earlier request
                    continue
                pdu = self.decoder.decode(frame)
                if pdu is None:
                    self.bad_frames += 1
                    on_bad(f"unit {dev_id}: an answer that cannot be decoded "
                           f"(function {frame[0]}, {len(frame) - 1} data bytes: {frame[:16].hex(' ')})")
                    return used, None
                pdu.dev_id = dev_id
                pdu.transaction_id = tid
                return used, pdu
            return used, None

    return _TcpFramer(decoder)


class Link:
    """One connection to a bus through pymodbus, one request at a time."""

    def __init__(self, spec: LinkSpec) -> None:
        _quiet_pymodbus()
        self.spec = spec
        self._client = None  # built lazily: needs a running loop
        self._framer = None  # our RTU framer, on RTU links
        self.connects = 0
        self.last_rx = 0.0  # time.monotonic() when the last bytes arrived
        self._stray_before = 0
        self._bad_reason: str | None = None  # set by the framer when an answer does not decode

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
        from pymodbus.pdu import DecodePDU

        if self.spec.kind != "tcp":
            self._framer = _line_framer(DecodePDU(False))
        else:
            self._framer = _socket_framer(DecodePDU(False), self._bad_answer)
        client.ctx.framer = self._framer
        return client

    def _bad_answer(self, reason: str) -> None:
        """Fail the request in flight now rather than at its timeout (called from the framer)."""
        self._bad_reason = reason
        client = self._client
        future = getattr(client.ctx, "response_future", None) if client is not None else None
        if future is not None and not future.done():
            from pymodbus.exceptions import ModbusIOException

            future.set_exception(ModbusIOException(reason))

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self.last_rx = time.monotonic()
        return data

    @property
    def stray_frames(self) -> int:
        """Answers discarded because no request of that unit and function was waiting for them."""
        return self._framer.stray_frames if self._framer is not None else 0

    @property
    def bad_frames(self) -> int:
        """Well-framed Modbus TCP answers whose PDU does not decode (each one a ``BadResponse``)."""
        return getattr(self._framer, "bad_frames", 0) if self._framer is not None else 0

    def discard_input(self) -> int:
        """Drop whatever was received and not used; returns how many bytes that was.

        Covers pymodbus's receive buffer and, on a serial port, the bytes the
        driver holds that the event loop has not read yet. (On a TCP stream
        those are read by the loop as they come and land in the buffer.)
        """
        client = self._client
        if client is None:
            return 0
        ctx = client.ctx
        dropped = len(ctx.recv_buffer)
        ctx.recv_buffer = b""
        port = getattr(ctx.transport, "sync_serial", None)
        if port is not None:
            try:
                dropped += port.in_waiting
                port.reset_input_buffer()
            except Exception:  # a port going away is reported by the next request
                pass
        if self._framer is not None:
            self._framer.pending = 0
        return dropped

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
        framer = self._framer
        self._bad_reason = None
        if framer is not None:
            framer.begin(unit, function)
            self._stray_before = framer.stray_frames
        try:
            response = await call(self._client)
        except ConnectionException as exc:
            self.close()
            raise LinkDown(f"{self.spec.describe()}: connection lost ({exc})") from exc
        except ModbusException as exc:
            if self._bad_reason is not None:
                raise BadResponse(self._bad_reason) from None
            if framer is not None and framer.pending:
                raise CrcError(f"unit {unit}: answer with a bad CRC or framing ({framer.pending} bytes)") from exc
            if self._client is None or not self._client.connected:
                self.close()
                raise LinkDown(f"{self.spec.describe()}: connection lost") from exc
            raise NoResponse(f"unit {unit}: no answer within {timeout:g} s{self._strays_seen()}") from exc
        except (TimeoutError, OSError) as exc:
            self.close()
            raise LinkDown(f"{self.spec.describe()}: {exc}") from exc
        finally:
            if framer is not None:
                framer.end()
        if response is None:
            raise NoResponse(f"unit {unit}: no answer within {timeout:g} s")
        # Checked here for every transport; on RTU links the framer already skipped such frames.
        if response.dev_id not in (0, unit):
            raise BadResponse(f"asked unit {unit}, unit {response.dev_id} answered")
        if (response.function_code & 0x7F) != function:
            raise BadResponse(f"unit {unit}: asked function {function}, "
                              f"the answer is for function {response.function_code & 0x7F}")
        if response.isError():
            code = getattr(response, "exception_code", 0)
            raise ExceptionResponse(int(code), function, unit)
        return response

    def _strays_seen(self) -> str:
        n = self.stray_frames - self._stray_before
        return f" ({n} frame(s) for another unit or function discarded)" if n > 0 else ""

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
