"""Data types of EN 13757-3 Annex A: integers, BCD, real, dates and times.

Decoders take the data field bytes in transmission order (least significant
byte first) and return Python values; encoders do the reverse. Decoders
return ``None`` for a value the meter marks invalid or that cannot be a real
value (BCD with digits A..E, a date with month 13); the caller records why.
"""

from __future__ import annotations

import struct
from datetime import date, datetime, time

__all__ = [
    "decode_int",
    "encode_int",
    "decode_bcd",
    "encode_bcd",
    "decode_real32",
    "encode_real32",
    "decode_date_g",
    "encode_date_g",
    "decode_datetime_f",
    "encode_datetime_f",
    "decode_datetime_i",
    "encode_datetime_i",
    "decode_time_j",
    "encode_time_j",
    "decode_text",
    "encode_text",
]


def decode_int(data: bytes, signed: bool = True) -> int:
    """Type B (signed, two's complement) or type C/D (unsigned binary), LSB first."""
    return int.from_bytes(data, "little", signed=signed)


def encode_int(value: int, size: int, signed: bool = True) -> bytes:
    """Raise ``OverflowError`` when ``value`` does not fit in ``size`` bytes."""
    return int(value).to_bytes(size, "little", signed=signed)


def decode_bcd(data: bytes) -> int | None:
    """Type A: packed BCD, LSB first. A most significant nibble F means negative.

    Returns ``None`` when any other digit is A..F (meters use such codes,
    e.g. ``EEEE``, to flag an error instead of a value).
    """
    digits = data[::-1].hex()
    negative = False
    if digits and digits[0] == "f":
        negative = True
        digits = digits[1:]
    if not digits:
        return 0
    if not digits.isdigit():
        return None
    value = int(digits)
    return -value if negative else value


def encode_bcd(value: int, size: int) -> bytes:
    """Raise ``OverflowError`` when ``value`` has too many digits for ``size`` bytes."""
    value = int(value)
    ndigits = 2 * size
    if value < 0:
        text = str(-value).rjust(ndigits - 1, "0")
        if len(text) > ndigits - 1:
            raise OverflowError(f"{value} does not fit in {size} BCD bytes")
        text = "f" + text
    else:
        text = str(value).rjust(ndigits, "0")
        if len(text) > ndigits:
            raise OverflowError(f"{value} does not fit in {size} BCD bytes")
    return bytes.fromhex(text)[::-1]


def decode_real32(data: bytes) -> float:
    """Type H: IEEE 754 single precision, LSB first."""
    return struct.unpack("<f", data)[0]


def encode_real32(value: float) -> bytes:
    return struct.pack("<f", value)


def _year(low3: int, high4: int, hundred: int = 0) -> int:
    """Year from the split 7-bit field (0..99).

    EN 13757-3:2013 adds two 'hundred year' bits to type F; meters built to
    the 2004 edition send 0 there, so with no hundred-year bits the common
    reading applies: 0..80 is 2000..2080, 81..99 is 1981..1999.
    """
    y = low3 | (high4 << 3)
    if hundred:
        return 1900 + 100 * hundred + y
    return 2000 + y if y <= 80 else 1900 + y


def _split_year(year: int) -> tuple[int, int, int]:
    """(low 3 bits, high 4 bits, hundred-year bits) for encoding."""
    if 2000 <= year <= 2080:
        y, hundred = year - 2000, 0
    elif 1981 <= year <= 1999:
        y, hundred = year - 1900, 0
    elif 1900 <= year <= 2299:
        hundred, y = divmod(year - 1900, 100)
    else:
        raise OverflowError(f"year {year} cannot be coded")
    return y & 0x07, y >> 3, hundred


def _iso_date(year: int, month: int, day: int) -> str | None:
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def decode_date_g(data: bytes) -> str | None:
    """Type G (16 bit): date. ISO ``YYYY-MM-DD`` or ``None`` when invalid."""
    b0, b1 = data[0], data[1]
    day = b0 & 0x1F
    month = b1 & 0x0F
    return _iso_date(_year(b0 >> 5, b1 >> 4), month, day)


def encode_date_g(value: date) -> bytes:
    low, high, hundred = _split_year(value.year)
    if hundred:
        raise OverflowError(f"type G cannot code the year {value.year}")
    return bytes((value.day | (low << 5), value.month | (high << 4)))


def decode_datetime_f(data: bytes) -> tuple[str | None, bool]:
    """Type F (32 bit): date and time to the minute.

    Returns the ISO ``YYYY-MM-DDTHH:MM:00`` text (``None`` when the fields
    are out of range) and the IV (time invalid) flag.
    """
    b0, b1, b2, b3 = data[0], data[1], data[2], data[3]
    invalid = bool(b0 & 0x80)
    minute = b0 & 0x3F
    hour = b1 & 0x1F
    day = b2 & 0x1F
    month = b3 & 0x0F
    year = _year(b2 >> 5, b3 >> 4, (b1 >> 5) & 0x03)
    return _iso_datetime(year, month, day, hour, minute, 0), invalid


def encode_datetime_f(value: datetime, invalid: bool = False, summer: bool = False) -> bytes:
    low, high, hundred = _split_year(value.year)
    return bytes(
        (
            value.minute | (0x80 if invalid else 0),
            value.hour | (hundred << 5) | (0x80 if summer else 0),
            value.day | (low << 5),
            value.month | (high << 4),
        )
    )


def decode_datetime_i(data: bytes) -> tuple[str | None, bool]:
    """Type I (48 bit): date and time to the second, with day of week and week."""
    second = data[0] & 0x3F
    minute = data[1] & 0x3F
    invalid = bool(data[1] & 0x80)
    hour = data[2] & 0x1F
    day = data[3] & 0x1F
    month = data[4] & 0x0F
    year = _year(data[3] >> 5, data[4] >> 4)
    return _iso_datetime(year, month, day, hour, minute, second), invalid


def encode_datetime_i(value: datetime, invalid: bool = False) -> bytes:
    low, high, hundred = _split_year(value.year)
    if hundred:
        raise OverflowError(f"type I cannot code the year {value.year}")
    weekday = value.isoweekday()  # 1 = Monday .. 7 = Sunday
    week = value.isocalendar()[1]
    return bytes(
        (
            value.second,
            value.minute | (0x80 if invalid else 0),
            value.hour | (weekday << 5),
            value.day | (low << 5),
            value.month | (high << 4),
            week,
        )
    )


def decode_time_j(data: bytes) -> str | None:
    """Type J (24 bit): time of day ``HH:MM:SS``."""
    try:
        return time(data[2] & 0x1F, data[1] & 0x3F, data[0] & 0x3F).isoformat()
    except ValueError:
        return None


def encode_time_j(value: time) -> bytes:
    return bytes((value.second, value.minute, value.hour))


def _iso_datetime(year: int, month: int, day: int, hour: int, minute: int, second: int) -> str | None:
    try:
        return datetime(year, month, day, hour, minute, second).isoformat()
    except ValueError:
        return None


def decode_text(data: bytes) -> str:
    """LVAR text: ISO 8859-1, sent last character first."""
    return data[::-1].decode("latin-1")


def encode_text(value: str) -> bytes:
    """Raise ``UnicodeEncodeError`` for characters outside ISO 8859-1."""
    return value.encode("latin-1")[::-1]
