"""How an AMQP 0-9-1 method class is encoded and decoded, derived from its fields.

``methods.py`` declares every method as a frozen, slotted dataclass whose field
annotations name the AMQP domain (``Short``, ``ShortStr``, ``Bit``, ...); the
``amqp_method`` decorator turns such a declaration into a method class with its
ids, its wire field list (``FIELDS``) and a decoder.  Type checkers see plain
dataclasses with ``int``/``str``/``bytes``/``bool``/``dict`` fields.

Arguments named ``reserved_*`` are the spec's deprecated "ticket"/"out-of-band"
fields: they are parsed (so offsets stay right) but never looked at.  The generic
path handles every method; the hot ones (publish, ack, nack, reject, deliver) also
have hand-written codecs in ``fast.py``.
"""

from __future__ import annotations

import dataclasses
import struct
import typing
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, TypeVar

from .codec import (
    DecodeError,
    decode_longstr,
    decode_name,
    decode_shortstr,
    decode_table,
    encode_longstr,
    encode_shortstr,
    encode_table,
)

__all__ = [
    "Bit",
    "Long",
    "LongLong",
    "LongStr",
    "Method",
    "Octet",
    "Short",
    "ShortStr",
    "Table",
    "Timestamp",
    "amqp_method",
]

# The AMQP domains of method arguments, as annotations: the Python type for readers
# and type checkers, the wire kind for the codec.
Octet = Annotated[int, "octet"]
Short = Annotated[int, "short"]
Long = Annotated[int, "long"]
LongLong = Annotated[int, "longlong"]
Timestamp = Annotated[int, "timestamp"]
ShortStr = Annotated[str, "shortstr"]
LongStr = Annotated[bytes, "longstr"]
Bit = Annotated[bool, "bit"]
Table = Annotated[dict[str, Any], "table"]

_u16 = struct.Struct(">H")
_u32 = struct.Struct(">I")
_u64 = struct.Struct(">Q")
_ids = struct.Struct(">HH")

Decoder = Callable[[bytes | memoryview, int], "Method"]
_M = TypeVar("_M", bound="type[Method]")


class Method:
    """Base of every method class (declared in ``methods.py``)."""

    __slots__ = ()
    CLASS_ID: ClassVar[int]
    METHOD_ID: ClassVar[int]
    NAME: ClassVar[str]
    FIELDS: ClassVar[tuple[tuple[str, str], ...]]
    HAS_CONTENT: ClassVar[bool]
    # decode(payload, offset after the ids) -> the method
    decode: ClassVar[Decoder]

    def encode(self) -> bytes:
        """The method frame payload: class id, method id, arguments."""
        out = [_ids.pack(self.CLASS_ID, self.METHOD_ID)]
        bits = 0
        nbits = 0
        for name, kind in self.FIELDS:
            value = getattr(self, name)
            if kind == "bit":
                if value:
                    bits |= 1 << nbits
                nbits += 1
                continue
            if nbits:
                out.append(bytes((bits,)))
                bits = nbits = 0
            if kind == "shortstr":
                out.append(encode_shortstr(value))
            elif kind == "longstr":
                out.append(encode_longstr(value))
            elif kind == "short":
                out.append(_u16.pack(value))
            elif kind == "long":
                out.append(_u32.pack(value))
            elif kind in ("longlong", "timestamp"):
                out.append(_u64.pack(value))
            elif kind == "octet":
                out.append(bytes((value,)))
            elif kind == "table":
                out.append(encode_table(value))
        if nbits:
            out.append(bytes((bits,)))
        return b"".join(out)


def _decoder(cls: type[Method]) -> Decoder:
    # Every short string in a method must be UTF-8 (RabbitMQ: 501 FRAME_ERROR), except
    # the exchange and routing key that travel with content: RabbitMQ takes any bytes
    # in basic.publish (and hands them back as they came in return/deliver/get-ok).
    lenient = {"exchange", "routing_key"} if cls.HAS_CONTENT else set()
    fields = tuple((name, "shortstr_any" if kind == "shortstr" and name in lenient else kind)
                   for name, kind in cls.FIELDS)

    def decode(buf: bytes | memoryview, off: int) -> Method:
        values: list[Any] = []
        v: Any
        bitbyte = 0
        bitpos = 8
        try:
            for _name, kind in fields:
                if kind == "bit":
                    if bitpos == 8:
                        bitbyte = buf[off]
                        off += 1
                        bitpos = 0
                    values.append(bool(bitbyte & (1 << bitpos)))
                    bitpos += 1
                    continue
                bitpos = 8
                if kind == "shortstr":
                    v, off = decode_name(buf, off)
                elif kind == "shortstr_any":
                    v, off = decode_shortstr(buf, off)
                elif kind == "longstr":
                    v, off = decode_longstr(buf, off)
                elif kind == "short":
                    (v,) = _u16.unpack_from(buf, off)
                    off += 2
                elif kind == "long":
                    (v,) = _u32.unpack_from(buf, off)
                    off += 4
                elif kind in ("longlong", "timestamp"):
                    (v,) = _u64.unpack_from(buf, off)
                    off += 8
                elif kind == "octet":
                    v = buf[off]
                    off += 1
                else:  # table
                    v, off = decode_table(buf, off)
                values.append(v)
        except (struct.error, IndexError) as exc:
            raise DecodeError(f"malformed {cls.NAME}: {exc}") from None
        return cls(*values)

    return decode




@typing.dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def amqp_method(class_id: int, method_id: int, name: str, *,
                content: bool = False) -> Callable[[_M], _M]:
    """Make a method class of a declaration (see the module docstring)."""

    def make(cls: _M) -> _M:
        made: Any = dataclasses.dataclass(frozen=True, slots=True)(cls)
        hints = typing.get_type_hints(made, include_extras=True)
        made.CLASS_ID = class_id
        made.METHOD_ID = method_id
        made.NAME = name
        made.HAS_CONTENT = content
        made.FIELDS = tuple((f.name, hints[f.name].__metadata__[0])
                            for f in dataclasses.fields(made))
        made.decode = staticmethod(_decoder(made))
        return typing.cast(_M, made)

    return make
