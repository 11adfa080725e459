"""Basic-class content properties.

Hutch keeps a message's properties as the raw bytes the publisher sent and
writes those same bytes in every delivery, so a publish -> deliver round trip
never decodes or re-encodes them.  Only the two fields the broker itself
acts on (delivery_mode, expiration) are peeked at; the full decoder exists
for the headers exchange, user_id validation and tests.

Layout (AMQP 0-9-1 §4.2.6.1)::

    property-flags(2) [more flag words while bit 0 is set] property values...

Flag bits, most significant first, in this order:
"""

from __future__ import annotations

import struct
from typing import Any

from .codec import (
    DecodeError,
    decode_shortstr,
    decode_table,
    encode_shortstr,
    encode_table,
)

# (name, type) in wire order; bit 15 is the first.
PROPERTIES: tuple[tuple[str, str], ...] = (
    ("content_type", "shortstr"),
    ("content_encoding", "shortstr"),
    ("headers", "table"),
    ("delivery_mode", "octet"),
    ("priority", "octet"),
    ("correlation_id", "shortstr"),
    ("reply_to", "shortstr"),
    ("expiration", "shortstr"),
    ("message_id", "shortstr"),
    ("timestamp", "longlong"),
    ("type", "shortstr"),
    ("user_id", "shortstr"),
    ("app_id", "shortstr"),
    ("cluster_id", "shortstr"),
)

_u16 = struct.Struct(">H")
_u32 = struct.Struct(">I")
_u64 = struct.Struct(">Q")

FLAG_HEADERS = 1 << 13
FLAG_DELIVERY_MODE = 1 << 12
FLAG_EXPIRATION = 1 << 8
FLAG_USER_ID = 1 << 4


def _skip_flags(raw: bytes, off: int = 0) -> tuple[int, int]:
    (flags,) = _u16.unpack_from(raw, off)
    off += 2
    more = flags
    while more & 1:  # continuation words carry no basic-class properties
        (more,) = _u16.unpack_from(raw, off)
        off += 2
    return flags, off


def decode_properties(raw: bytes, skip_headers: bool = False) -> dict[str, Any]:
    """All present properties as a dict (absent ones are left out).

    Headers nest to any depth (no limit, as in RabbitMQ: Hutch takes them on publish
    without decoding).  ``skip_headers`` leaves them out, for a caller that must show
    the other properties of a message whose headers do not decode."""
    try:
        flags, off = _skip_flags(raw)
        props: dict[str, Any] = {}
        bit = 15
        for name, kind in PROPERTIES:
            if flags & (1 << bit):
                if kind == "shortstr":
                    props[name], off = decode_shortstr(raw, off)
                elif kind == "table":
                    if skip_headers:
                        off += 4 + _u32.unpack_from(raw, off)[0]
                    else:
                        props[name], off = decode_table(raw, off, max_depth=None)
                elif kind == "octet":
                    props[name] = raw[off]
                    off += 1
                else:
                    (props[name],) = _u64.unpack_from(raw, off)
                    off += 8
            bit -= 1
        return props
    except (struct.error, IndexError) as exc:
        raise DecodeError(f"malformed content properties: {exc}") from None


def encode_properties(props: dict[str, Any]) -> bytes:
    flags = 0
    parts: list[bytes] = []
    bit = 15
    for name, kind in PROPERTIES:
        value = props.get(name)
        if value is not None:
            flags |= 1 << bit
            if kind == "shortstr":
                parts.append(encode_shortstr(value))
            elif kind == "table":
                parts.append(encode_table(value))
            elif kind == "octet":
                parts.append(bytes((value,)))
            else:
                parts.append(_u64.pack(value))
        bit -= 1
    return _u16.pack(flags) + b"".join(parts)


def peek(raw: bytes) -> tuple[int, str | None, bool, str | None]:
    """(delivery_mode, expiration, has_headers, user_id) without a full decode.

    Used on every publish, so it walks only as far as it must: most messages
    carry delivery_mode and perhaps content_type, and no expiration.
    """
    try:
        return _peek(raw)
    except (struct.error, IndexError) as exc:
        raise DecodeError(f"malformed content properties: {exc}") from None


def _peek(raw: bytes) -> tuple[int, str | None, bool, str | None]:
    flags, off = _skip_flags(raw)
    if not flags & (FLAG_EXPIRATION | FLAG_USER_ID | FLAG_DELIVERY_MODE):
        return 0, None, bool(flags & FLAG_HEADERS), None
    if not flags & (FLAG_EXPIRATION | FLAG_USER_ID):
        # Only delivery_mode matters: skip content_type, content_encoding, headers.
        if flags & (1 << 15):
            off += 1 + raw[off]
        if flags & (1 << 14):
            off += 1 + raw[off]
        if flags & FLAG_HEADERS:
            off += 4 + _u32.unpack_from(raw, off)[0]
        return raw[off], None, bool(flags & FLAG_HEADERS), None
    props = decode_properties(raw)
    return (
        props.get("delivery_mode", 0),
        props.get("expiration"),
        "headers" in props,
        props.get("user_id"),
    )
