"""Hand-written codecs for the methods on the message hot path.

publish / ack / nack / reject arrive once per message and deliver / confirm
leave once per message, so they skip the generic table-driven codec in
``methods.py``.  ``tests/protocol/test_fast.py`` checks every function here
against pamqp's encoding of the same method.
"""

from __future__ import annotations

import struct

from .codec import DecodeError

_frame_head = struct.Struct(">BHI")
_ids_tag = struct.Struct(">HHQ")
_deliver_tail = struct.Struct(">QB")
_u16 = struct.Struct(">H")
_u64 = struct.Struct(">Q")

_DELIVER_IDS = b"\x00\x3c\x00\x3c"  # basic(60).deliver(60)
_GET_OK_IDS = b"\x00\x3c\x00\x47"  # basic(60).get-ok(71)


def decode_publish(payload: bytes) -> tuple[str, str, bool, bool]:
    """basic.publish args -> (exchange, routing_key, mandatory, immediate).

    Layout after class/method ids: reserved(2) exchange(shortstr)
    routing_key(shortstr) bits(1: mandatory, immediate).
    """
    # Any bytes are taken, as RabbitMQ does (codec.decode_shortstr): a routing key that
    # is not UTF-8 reaches no queue (names are UTF-8) and travels on unchanged.
    try:
        off = 6
        n = payload[off]
        end = off + 1 + n
        if end > len(payload):
            raise IndexError("exchange overruns the frame")
        exchange = payload[off + 1 : end].decode("utf-8", "surrogateescape")
        off = end
        n = payload[off]
        end = off + 1 + n
        if end > len(payload):
            raise IndexError("routing key overruns the frame")
        routing_key = payload[off + 1 : end].decode("utf-8", "surrogateescape")
        off = end
        bits = payload[off]
    except IndexError as exc:
        raise DecodeError(f"malformed basic.publish: {exc}") from None
    return exchange, routing_key, bool(bits & 1), bool(bits & 2)


def decode_ack(payload: bytes) -> tuple[int, int]:
    """basic.ack / reject / nack args -> (delivery_tag, bits)."""
    if len(payload) < 13:
        raise DecodeError("malformed acknowledgement")
    return _u64.unpack_from(payload, 4)[0], payload[12]


def deliver_frame(channel: int, consumer_tag_enc: bytes, delivery_tag: int,
                  redelivered: bool, route_enc: bytes) -> bytes:
    """A complete basic.deliver method frame.

    ``*_enc`` arguments are already shortstr-encoded (length byte + bytes):
    consumer tags, exchange names and routing keys repeat on every delivery, so
    callers encode them once.  ``route_enc`` is the exchange and the routing key
    back to back, as in ``delivery``.
    """
    payload = b"".join((
        _DELIVER_IDS, consumer_tag_enc, _u64.pack(delivery_tag),
        b"\x01" if redelivered else b"\x00", route_enc,
    ))
    return _frame_head.pack(1, channel, len(payload)) + payload + b"\xce"


_deliver_head = struct.Struct(">BHIHH")  # method frame head + basic.deliver's class/method ids
_frame_end_head = struct.Struct(">BBHI")  # the previous frame's end octet + the next frame's head


def delivery(channel: int, consumer_tag_enc: bytes, delivery_tag: int, redelivered: bool,
             route_enc: bytes, header: bytes, body: bytes) -> bytes:
    """basic.deliver, its content header and (when the body is not empty) one body
    frame, as one bytes: the common small-message delivery in a single join.

    ``route_enc`` is the exchange and routing key, both shortstr-encoded, back to
    back; ``header`` the content-header payload as received.  The caller checks
    that the body fits one frame (``body_frames`` splits larger ones).
    """
    parts = [
        _deliver_head.pack(1, channel, 13 + len(consumer_tag_enc) + len(route_enc), 60, 60),
        consumer_tag_enc, _deliver_tail.pack(delivery_tag, redelivered), route_enc,
        _frame_end_head.pack(0xCE, 2, channel, len(header)), header,
    ]
    if body:
        parts += (_frame_end_head.pack(0xCE, 3, channel, len(body)), body)
    parts.append(b"\xce")
    return b"".join(parts)


def confirm_frame(channel: int, delivery_tag: int, multiple: bool, nack: bool = False) -> bytes:
    """basic.ack (or basic.nack with requeue=false) sent to a confirming publisher."""
    payload = _ids_tag.pack(60, 120 if nack else 80, delivery_tag) + (b"\x01" if multiple else b"\x00")
    return _frame_head.pack(1, channel, len(payload)) + payload + b"\xce"


def shortstr(value: str) -> bytes:
    # surrogateescape: a routing key that was not UTF-8 goes back out as it came in.
    raw = value.encode("utf-8", "surrogateescape")
    return bytes((len(raw),)) + raw
