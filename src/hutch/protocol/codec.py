"""AMQP 0-9-1 primitive types and field tables (sans-I/O).

Decoders take ``(buf, offset)`` and return ``(value, new_offset)`` so that a
whole method can be parsed with ``struct.unpack_from`` at offsets, without
slicing the buffer for every field.

Field-table type tags are exactly those RabbitMQ's decoder takes
(rabbit_binary_parser), with its meaning of each, not the 0-9-1 errata table's,
because that is what every real client speaks:  ``t`` bool, ``b`` int8, ``B``
uint8, ``s`` int16 (a short *string* in the spec), ``u`` uint16, ``I`` int32,
``i`` uint32, ``l`` and ``L`` int64 (both signed: py-amqp, hence kombu and Celery,
writes integers beyond 32 bits as ``L``), ``f`` float, ``d`` double, ``D`` decimal
(scale uint8, value uint32), ``S`` long string, ``x`` byte array, ``A`` array,
``T`` timestamp, ``F`` table, ``V`` void.  The spec's ``U`` (int16) is not among
them: RabbitMQ refuses it, and so does Hutch.

Each value decodes to a Python value that encodes back to the same bytes, as
rabbit_binary_generator writes back what it parsed: integers and floats whose tag
a plain ``int``/``float`` would not get back are the subclasses below (``Int8`` ...
``Float32``).  The one change is RabbitMQ's too: ``L`` comes back as ``l``.
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

    code = 502  # SYNTAX_ERROR


class Utf8Error(DecodeError):
    """A name in a method frame (queue, exchange, consumer tag, vhost, ...) is not
    valid UTF-8.  RabbitMQ (rabbit_binary_parser:assert_utf8) closes the connection
    with 501 "FRAME_ERROR - Malformed UTF-8 in shortstr"; class/method are 0 for a
    method on a channel (the method was never decoded)."""

    code = 501  # FRAME_ERROR

    def __init__(self) -> None:
        super().__init__("Malformed UTF-8 in shortstr")


class LongStr(bytes):
    """A long string that must stay bytes (not UTF-8 decoded) when re-encoded."""


class Timestamp(int):
    """A timestamp a datetime cannot hold (e.g. past year 9999): valid AMQP, kept as
    its number of seconds and encoded back as a timestamp."""


class Int8(int):
    """'b': RabbitMQ's ``byte``."""


class UInt8(int):
    """'B': ``unsignedbyte``."""


class Int16(int):
    """'s': ``short``."""


class UInt16(int):
    """'u': ``unsignedshort``."""


class UInt32(int):
    """'i': ``unsignedint``."""


class Int64(int):
    """'l' or 'L': ``long`` (a plain int gets 'I' when it fits 32 bits)."""


class Float32(float):
    """'f': ``float`` (a plain float is 'd', ``double``)."""


# Tag, struct and RabbitMQ's type name of each int/float subclass (for encoding and
# error texts).  A plain int is 'I' (``signedint``) or, beyond 32 bits, 'l'.
_TYPED: dict[type, tuple[bytes, struct.Struct, str]] = {
    Int8: (b"b", _i8, "byte"),
    UInt8: (b"B", _u8, "unsignedbyte"),
    Int16: (b"s", _i16, "short"),
    UInt16: (b"u", _u16, "unsignedshort"),
    UInt32: (b"i", _u32, "unsignedint"),
    Int64: (b"l", _i64, "long"),
    Float32: (b"f", _f32, "float"),
}


def decode_shortstr(buf: bytes | memoryview, off: int) -> tuple[str, int]:
    """A short string that is data, not a name (content properties, table keys,
    basic.publish's exchange and routing key): never refused, as in RabbitMQ.  Bytes
    that are not UTF-8 become lone surrogates ("surrogateescape"), which every encoder
    here turns back into the same bytes, and which no valid name can contain (names
    are checked with ``decode_name``), so a bad routing key never aliases a queue."""
    n = buf[off]
    end = off + 1 + n
    if end > len(buf):
        raise DecodeError("short string overruns the frame")
    return bytes(buf[off + 1 : end]).decode("utf-8", "surrogateescape"), end


def decode_name(buf: bytes | memoryview, off: int) -> tuple[str, int]:
    """A short string in a method frame, which RabbitMQ requires to be UTF-8.

    Python's strict decoder also refuses encoded surrogates and code points above
    U+10FFFF, which Erlang's xmerl_ucs lets through; Hutch refuses them too (a str
    cannot hold the latter; see README, Known differences)."""
    n = buf[off]
    end = off + 1 + n
    if end > len(buf):
        raise DecodeError("short string overruns the frame")
    try:
        return bytes(buf[off + 1 : end]).decode("utf-8"), end
    except UnicodeDecodeError:
        raise Utf8Error() from None


def decode_longstr(buf: bytes | memoryview, off: int) -> tuple[bytes, int]:
    (n,) = _u32.unpack_from(buf, off)
    start = off + 4
    end = start + n
    if end > len(buf):
        raise DecodeError("long string overruns the frame")
    return bytes(buf[start:end]), end


def encode_shortstr(value: str | bytes) -> bytes:
    # surrogateescape: the exact bytes a client sent (see decode_shortstr).
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(raw) > 255:
        raise ValueError("short string longer than 255 bytes")
    return _u8.pack(len(raw)) + raw


def encode_longstr(value: str | bytes) -> bytes:
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return _u32.pack(len(raw)) + raw


# Deepest nesting of tables/arrays accepted in a *method* frame (arguments, client
# properties): those are kept, compared, written to the definitions file and rendered
# as JSON, so they stay shallow.  Message headers have no limit (``max_depth=None``):
# Hutch accepts them without looking, as RabbitMQ does at any depth, so whatever reads
# them later (dead-lettering, the headers exchange, the management API) must cope.
# Decoding and encoding are loops over an explicit stack, never recursion: a frame can
# hold ~26,000 levels, far past Python's recursion limit.
MAX_DEPTH = 64


def _decode_scalar(tag: int, buf: bytes | memoryview, off: int) -> tuple[Any, int]:
    """A field value that is not a table or an array."""
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
    if tag == 0x6C or tag == 0x4C:  # 'l', 'L': both signed, as in RabbitMQ
        return Int64(_i64.unpack_from(buf, off)[0]), off + 8
    if tag == 0x62:  # 'b'
        return Int8(_i8.unpack_from(buf, off)[0]), off + 1
    if tag == 0x42:  # 'B'
        return UInt8(buf[off]), off + 1
    if tag == 0x73:  # 's'
        return Int16(_i16.unpack_from(buf, off)[0]), off + 2
    if tag == 0x75:  # 'u'
        return UInt16(_u16.unpack_from(buf, off)[0]), off + 2
    if tag == 0x69:  # 'i'
        return UInt32(_u32.unpack_from(buf, off)[0]), off + 4
    if tag == 0x66:  # 'f'
        return Float32(_f32.unpack_from(buf, off)[0]), off + 4
    if tag == 0x64:  # 'd'
        return _f64.unpack_from(buf, off)[0], off + 8
    if tag == 0x44:  # 'D': RabbitMQ reads the value as unsigned
        scale = buf[off]
        (raw_int,) = _u32.unpack_from(buf, off + 1)
        return decimal.Decimal(raw_int).scaleb(-scale), off + 5
    if tag == 0x54:  # 'T'
        (ts,) = _u64.unpack_from(buf, off)
        try:
            return datetime.datetime.fromtimestamp(ts, tz=datetime.UTC), off + 8
        except (ValueError, OverflowError, OSError):
            return Timestamp(ts), off + 8
    if tag == 0x56:  # 'V'
        return None, off
    if tag == 0x78:  # 'x'
        return decode_longstr(buf, off)
    raise DecodeError(f"unknown field type {chr(tag)!r}")


def decode_table(buf: bytes | memoryview, off: int, depth: int = 0,
                 max_depth: int | None = MAX_DEPTH) -> tuple[dict[str, Any], int]:
    """The field table at ``off``; tables/arrays nested more than ``max_depth`` levels
    below it (``depth`` levels are already above it) are refused, None: no limit."""
    limit = None if max_depth is None else max_depth - depth
    if limit is not None and limit < 0:
        raise DecodeError("field table nested too deeply")
    try:
        (n,) = _u32.unpack_from(buf, off)
        off += 4
        end = off + n
        if end > len(buf):
            raise DecodeError("table overruns the frame")
        table: dict[str, Any] = {}
        # One entry per open table/array: (container, where it ends).
        stack: list[tuple[Any, int]] = [(table, end)]
        while stack:
            container, end = stack[-1]
            if off >= end:
                if off != end:
                    kind = "table" if type(container) is dict else "array"
                    raise DecodeError(f"{kind} length mismatch")
                stack.pop()
                continue
            key = None
            if type(container) is dict:
                key, off = decode_shortstr(buf, off)
            tag = buf[off]
            off += 1
            if tag == 0x46 or tag == 0x41:  # 'F', 'A'
                if limit is not None and len(stack) > limit:
                    raise DecodeError("field table nested too deeply")
                (n,) = _u32.unpack_from(buf, off)
                off += 4
                if off + n > len(buf):
                    raise DecodeError(("table" if tag == 0x46 else "array") + " overruns the frame")
                value: Any = {} if tag == 0x46 else []
                stack.append((value, off + n))
            else:
                value, off = _decode_scalar(tag, buf, off)
            if key is not None:
                container[key] = value
            else:
                container.append(value)
        return table, off
    except (struct.error, IndexError) as exc:
        raise DecodeError(f"malformed field table: {exc}") from None


def _encode_scalar(value: Any, out: list[bytes]) -> None:
    if isinstance(value, Timestamp):
        out.append(b"T" + _u64.pack(value))
    elif isinstance(value, bool):
        out.append(b"t\x01" if value else b"t\x00")
    elif type(value) in _TYPED:
        tag, packer, _name = _TYPED[type(value)]
        out.append(tag + packer.pack(value))
    elif isinstance(value, int):
        if -(2**31) <= value < 2**31:
            out.append(b"I" + _i32.pack(value))
        else:
            out.append(b"l" + _i64.pack(value))
    elif isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
        out.append(b"S" + _u32.pack(len(raw)) + raw)
    elif isinstance(value, LongStr):
        out.append(b"S" + _u32.pack(len(value)) + value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out.append(b"x" + _u32.pack(len(raw)) + raw)
    elif isinstance(value, float):
        out.append(b"d" + _f64.pack(value))
    elif value is None:
        out.append(b"V")
    elif isinstance(value, datetime.datetime):
        out.append(b"T" + _u64.pack(int(value.timestamp())))
    elif isinstance(value, decimal.Decimal):
        _sign, _digits, exponent = value.as_tuple()
        scale = -int(exponent) if isinstance(exponent, int) and exponent < 0 else 0
        raw_int = int(value.scaleb(scale))
        # RabbitMQ's value is unsigned; a negative one (from a client) keeps its bytes.
        out.append(b"D" + _u8.pack(scale) + (_i32 if raw_int < 0 else _u32).pack(raw_int))
    else:
        raise TypeError(f"cannot encode {type(value).__name__} in a field table")


def encode_table(table: dict[str, Any] | None) -> bytes:
    if not table:
        return b"\x00\x00\x00\x00"
    # One entry per open table/array: (its items, its encoded parts, is it a table).
    stack: list[tuple[Any, list[bytes], bool]] = [(iter(table.items()), [], True)]
    while True:
        items, parts, is_table = stack[-1]
        for item in items:
            if is_table:
                key, value = item
                parts.append(encode_shortstr(key))
            else:
                value = item
            if isinstance(value, dict):
                parts.append(b"F")
                stack.append((iter(value.items()), [], True))
                break
            if isinstance(value, (list, tuple)):
                parts.append(b"A")
                stack.append((iter(value), [], False))
                break
            _encode_scalar(value, parts)
        else:  # this table/array is complete: its bytes go to its parent
            stack.pop()
            body = b"".join(parts)
            encoded = _u32.pack(len(body)) + body
            if not stack:
                return encoded
            stack[-1][1].append(encoded)


def field_type_name(value: Any) -> str:
    """RabbitMQ's name for the AMQP type of a decoded table value (for error texts)."""
    if isinstance(value, bool):
        return "bool"
    typed = _TYPED.get(type(value))
    if typed is not None:
        return typed[2]
    if isinstance(value, (datetime.datetime, Timestamp)):
        return "timestamp"
    if isinstance(value, int):
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, (str, LongStr)):
        return "longstr"
    if isinstance(value, float):
        return "double"
    if isinstance(value, decimal.Decimal):
        return "decimal"
    if isinstance(value, bytes):
        return "binary"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "void"
    return type(value).__name__
