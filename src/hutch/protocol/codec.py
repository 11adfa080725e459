"""AMQP 0-9-1 primitive types and field tables (sans-I/O).

Decoders take ``(buf, offset)`` and return ``(value, new_offset)`` so that a
whole method can be parsed with ``struct.unpack_from`` at offsets, without
slicing the buffer for every field.

Field-table type tags follow RabbitMQ's reading of the spec (its "spec
differences" page), not the 0-9-1 errata table, because that is what every
real client speaks:  ``t`` bool, ``b`` int8, ``B`` uint8, ``s`` int16,
``u`` uint16, ``I`` int32, ``i`` uint32, ``l`` int64, ``f`` float, ``d``
double, ``D`` decimal, ``S`` long string, ``x`` byte array, ``A`` array,
``T`` timestamp, ``F`` table, ``V`` void.
"""

from __future__ import annotations

import datetime
import decimal
import struct
from typing import Any

_u8 = struct.Struct(">B")
_i8 = struct.Struct(">b")
_u16 = struct.Struct(">H")
_i16 = struct.Struct(">h")
_u32 = struct.Struct(">I")
_i32 = struct.Struct(">i")
_u64 = struct.Struct(">Q")
_i64 = struct.Struct(">q")
_f32 = struct.Struct(">f")
_f64 = struct.Struct(">d")


class DecodeError(ValueError):
    """Malformed bytes inside a frame payload (a SYNTAX_ERROR on the wire)."""


class LongStr(bytes):
    """A long string that must stay bytes (not UTF-8 decoded) when re-encoded."""


def decode_shortstr(buf: bytes | memoryview, off: int) -> tuple[str, int]:
    n = buf[off]
    end = off + 1 + n
    if end > len(buf):
        raise DecodeError("short string overruns the frame")
    raw = bytes(buf[off + 1 : end])
    try:
        return raw.decode("utf-8"), end
    except UnicodeDecodeError:
        return raw.decode("latin-1"), end


def decode_longstr(buf: bytes | memoryview, off: int) -> tuple[bytes, int]:
    (n,) = _u32.unpack_from(buf, off)
    start = off + 4
    end = start + n
    if end > len(buf):
        raise DecodeError("long string overruns the frame")
    return bytes(buf[start:end]), end


def encode_shortstr(value: str | bytes) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if len(raw) > 255:
        raise ValueError("short string longer than 255 bytes")
    return _u8.pack(len(raw)) + raw


def encode_longstr(value: str | bytes) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return _u32.pack(len(raw)) + raw


# Deepest nesting of tables/arrays we decode: a frame could otherwise carry
# thousands of levels and exhaust Python's recursion limit.
MAX_DEPTH = 64


def _decode_value(buf: bytes | memoryview, off: int, depth: int = 0) -> tuple[Any, int]:
    tag = buf[off]
    off += 1
    if tag == 0x53:  # 'S'
        raw, off = decode_longstr(buf, off)
        try:
            return raw.decode("utf-8"), off
        except UnicodeDecodeError:
            return LongStr(raw), off
    if tag == 0x49:  # 'I'
        return _i32.unpack_from(buf, off)[0], off + 4
    if tag == 0x74:  # 't'
        return buf[off] != 0, off + 1
    if tag == 0x46:  # 'F'
        return decode_table(buf, off, depth + 1)
    if tag == 0x6C:  # 'l'
        return _i64.unpack_from(buf, off)[0], off + 8
    if tag == 0x41:  # 'A'
        (n,) = _u32.unpack_from(buf, off)
        off += 4
        end = off + n
        if end > len(buf):
            raise DecodeError("array overruns the frame")
        if depth >= MAX_DEPTH:
            raise DecodeError("field table nested too deeply")
        items = []
        while off < end:
            v, off = _decode_value(buf, off, depth + 1)
            items.append(v)
        if off != end:
            raise DecodeError("array length mismatch")
        return items, off
    if tag == 0x62:  # 'b'
        return _i8.unpack_from(buf, off)[0], off + 1
    if tag == 0x42:  # 'B'
        return buf[off], off + 1
    if tag == 0x73:  # 's'
        return _i16.unpack_from(buf, off)[0], off + 2
    if tag == 0x75:  # 'u'
        return _u16.unpack_from(buf, off)[0], off + 2
    if tag == 0x69:  # 'i'
        return _u32.unpack_from(buf, off)[0], off + 4
    if tag == 0x66:  # 'f'
        return _f32.unpack_from(buf, off)[0], off + 4
    if tag == 0x64:  # 'd'
        return _f64.unpack_from(buf, off)[0], off + 8
    if tag == 0x44:  # 'D'
        scale = buf[off]
        (raw,) = _i32.unpack_from(buf, off + 1)
        return decimal.Decimal(raw).scaleb(-scale), off + 5
    if tag == 0x54:  # 'T'
        (ts,) = _u64.unpack_from(buf, off)
        try:
            return datetime.datetime.fromtimestamp(ts, tz=datetime.UTC), off + 8
        except (ValueError, OverflowError, OSError):
            raise DecodeError(f"timestamp {ts} out of range") from None
    if tag == 0x56:  # 'V'
        return None, off
    if tag == 0x78:  # 'x'
        raw, off = decode_longstr(buf, off)
        return raw, off
    raise DecodeError(f"unknown field type {chr(tag)!r}")


def decode_table(buf: bytes | memoryview, off: int, depth: int = 0) -> tuple[dict[str, Any], int]:
    if depth > MAX_DEPTH:
        raise DecodeError("field table nested too deeply")
    try:
        (n,) = _u32.unpack_from(buf, off)
        off += 4
        end = off + n
        if end > len(buf):
            raise DecodeError("table overruns the frame")
        table: dict[str, Any] = {}
        while off < end:
            key, off = decode_shortstr(buf, off)
            table[key], off = _decode_value(buf, off, depth)
        if off != end:
            raise DecodeError("table length mismatch")
        return table, off
    except (struct.error, IndexError) as exc:
        raise DecodeError(f"malformed field table: {exc}") from None


def _encode_value(value: Any, out: list[bytes]) -> None:
    if isinstance(value, bool):
        out.append(b"t\x01" if value else b"t\x00")
    elif isinstance(value, int):
        if -(2**31) <= value < 2**31:
            out.append(b"I" + _i32.pack(value))
        else:
            out.append(b"l" + _i64.pack(value))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out.append(b"S" + _u32.pack(len(raw)) + raw)
    elif isinstance(value, LongStr):
        out.append(b"S" + _u32.pack(len(value)) + value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out.append(b"x" + _u32.pack(len(raw)) + raw)
    elif isinstance(value, float):
        out.append(b"d" + _f64.pack(value))
    elif isinstance(value, dict):
        out.append(b"F" + encode_table(value))
    elif isinstance(value, (list, tuple)):
        parts: list[bytes] = []
        for item in value:
            _encode_value(item, parts)
        body = b"".join(parts)
        out.append(b"A" + _u32.pack(len(body)) + body)
    elif value is None:
        out.append(b"V")
    elif isinstance(value, datetime.datetime):
        out.append(b"T" + _u64.pack(int(value.timestamp())))
    elif isinstance(value, decimal.Decimal):
        _sign, _digits, exponent = value.as_tuple()
        scale = -int(exponent) if isinstance(exponent, int) and exponent < 0 else 0
        raw = int(value.scaleb(scale))
        out.append(b"D" + _u8.pack(scale) + _i32.pack(raw))
    else:
        raise TypeError(f"cannot encode {type(value).__name__} in a field table")


def encode_table(table: dict[str, Any] | None) -> bytes:
    if not table:
        return b"\x00\x00\x00\x00"
    parts: list[bytes] = []
    for key, value in table.items():
        parts.append(encode_shortstr(key))
        _encode_value(value, parts)
    body = b"".join(parts)
    return _u32.pack(len(body)) + body


def field_type_name(value: Any) -> str:
    """RabbitMQ's name for the AMQP type of a decoded table value (for error texts)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, (str, LongStr)):
        return "longstr"
    if isinstance(value, float):
        return "double"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "void"
    return type(value).__name__
