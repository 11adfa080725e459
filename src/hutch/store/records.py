"""Record layouts of the message log (sans-I/O: bytes in, tuples out).

Every record, whatever its type::

    length(4)  crc32(4)  type(1)  seq(8)  payload(length - 13)

``length`` counts everything after itself (crc, type, seq, payload), so a
reader can skip a record it does not understand; ``crc32`` (zlib's CRC-32)
covers type, seq and payload, so a torn or flipped record is detected.
``seq`` is the log-wide sequence number: strictly increasing, never reused
across restarts.  A message's id *is* the seq of its PUBLISH record.

Payloads (all integers big-endian):

PUBLISH (1) — one persistent message entering one durable queue::

    queue_id(8) flags(1) expires_ms(8) exchange(shortstr) routing_key(shortstr)
    header_len(4) header(header_len) body(rest)

  ``flags`` bit 0: already delivered (set when recovery salvages a delivered
  message into a fresh segment, so redelivered=true survives); ``expires_ms``:
  wall-clock expiry in ms since the epoch, 0 = never; ``header``: the
  content-header frame payload exactly as published (class, weight, body size,
  properties).

ACK (2) — messages that left their queue for good (ack, drop, expiry, purge)::

    count(4) then count x [queue_id(8) msg_id(8)]

DELIVER (3) — messages handed to a consumer for the first time (so they come
back with redelivered=true after a restart)::

    count(4) then count x [queue_id(8) msg_id(8)]

RETURNED (4) — a message's return counts, as they are now (``broker/redelivery.py``:
the delivery limit and ``x-delivery-count``)::

    count(4) then count x [queue_id(8) msg_id(8) delivery_count(4) acquired_count(4)]

  Written on every counted return of a persistent message in a durable queue
  (only queues that count returns: quorum queues, classic ones with a delivery
  limit), and at each unacked delivery with the counts the message will have if
  its holder is lost (so a crash counts that delivery as failed; a later return
  writes the real counts), through the same group commit as the other records.
  The counts are absolute, not increments, so the newest record of a message wins
  (recovery takes the last one it meets) and a record
  repeated (carried forward, salvaged) changes nothing.  A RETURNED record is a
  reference like ACK and DELIVER: its segment stays while the message's PUBLISH
  lives in an older one (carried forward with the message's current counts).
  Added after version 1 of the format without changing it: a log written by an
  older Hutch has none (every count starts at zero), and an older Hutch skips
  them (a reader skips record types it does not know).

FIRED (5) — a delayed message (``broker/delayed_store.py``) left its
x-delayed-message exchange, and the PUBLISH records that firing it created::

    count(4) then count x [store_id(8) msg_id(8) n(4) n x dest_seq(8)]

  A persistent message waiting in a durable delayed exchange is a PUBLISH whose
  ``queue_id`` is the exchange's store id (``hutch.exchange_ids`` in the
  definitions) and whose ``expires_ms`` is its *due* time (wall-clock ms).  Firing
  it writes, in one batch and in this order: this record, the PUBLISH records of
  its copies in durable queues (``dest_seq``: their seqs), then the ACK of the
  delayed message.  A batch is written whole into one segment, so after a power
  cut the log holds a prefix of it; recovery (``store/fired.py``) decides:
  every dest PUBLISH present -> the fire happened (the FIRED acts as the ACK);
  some missing -> it did not (the dest PUBLISHes that made it are dropped, the
  delayed message stays and fires again, once).  Either way recovery writes the
  ACKs that settle it, so a FIRED record is never a reference that must outlive
  anything.  Added like RETURNED: an older Hutch skips it.
"""

from __future__ import annotations

import struct
import zlib
from itertools import chain
from typing import NamedTuple

PUBLISH = 1
ACK = 2
DELIVER = 3
RETURNED = 4
FIRED = 5

_head = struct.Struct(">IIBQ")  # length, crc, type, seq
HEAD_SIZE = _head.size  # 17
_pub_fixed = struct.Struct(">QBQ")  # queue_id, flags, expires_ms
_pair = struct.Struct(">QQ")
_returned = struct.Struct(">QQII")
_u32 = struct.Struct(">I")

FLAG_DELIVERED = 1


class CorruptRecordError(Exception):
    """A record whose length or checksum does not hold."""


class Publish(NamedTuple):
    seq: int
    queue_id: int
    flags: int
    expires_ms: int
    exchange: str
    routing_key: str
    header: bytes
    body: bytes


def _frame(rtype: int, seq: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(struct.pack(">BQ", rtype, seq)))
    return _head.pack(len(payload) + 13, crc, rtype, seq) + payload


def encode_publish_parts(seq: int, queue_id: int, flags: int, expires_ms: int,
                         exchange_enc: bytes, routing_key_enc: bytes, header: bytes,
                         body: bytes) -> tuple[bytes, bytes]:
    """A PUBLISH record as (everything before the body, the body itself).

    The body is not copied: the CRC is computed over the two parts in turn and the
    writer hands both to one ``writev``.  ``*_enc`` are shortstr-encoded.
    """
    rest = b"".join((_pub_fixed.pack(queue_id, flags, expires_ms), exchange_enc,
                     routing_key_enc, _u32.pack(len(header)), header))
    crc = zlib.crc32(body, zlib.crc32(rest, zlib.crc32(struct.pack(">BQ", PUBLISH, seq))))
    head = _head.pack(len(rest) + len(body) + 13, crc, PUBLISH, seq)
    return head + rest, body


def encode_publish(seq: int, queue_id: int, flags: int, expires_ms: int, exchange_enc: bytes,
                   routing_key_enc: bytes, header: bytes, body: bytes) -> bytes:
    """The same record in one piece."""
    return b"".join(encode_publish_parts(seq, queue_id, flags, expires_ms, exchange_enc,
                                         routing_key_enc, header, body))


def encode_pairs(rtype: int, seq: int, pairs: list[tuple[int, int]]) -> bytes:
    payload = struct.pack(f">I{2 * len(pairs)}Q", len(pairs), *chain.from_iterable(pairs))
    return _frame(rtype, seq, payload)


def read_record(buf: bytes | memoryview, off: int) -> tuple[int, int, int, int] | None:
    """(type, seq, payload_start, next_offset) of the record at ``off``.

    Returns None when fewer bytes remain than the record needs (a torn tail);
    raises CorruptRecordError when the bytes are there but do not check out.
    """
    if len(buf) - off < HEAD_SIZE:
        return None
    length, crc, rtype, seq = _head.unpack_from(buf, off)
    if length < 13:
        raise CorruptRecordError(f"record length {length} too small at offset {off}")
    end = off + 4 + length
    if end > len(buf):
        return None
    body_start = off + HEAD_SIZE
    if zlib.crc32(buf[off + 8 : end]) != crc:
        raise CorruptRecordError(f"checksum mismatch at offset {off}")
    return rtype, seq, body_start, end


def decode_publish(seq: int, buf: bytes | memoryview, start: int, end: int) -> Publish:
    queue_id, flags, expires_ms = _pub_fixed.unpack_from(buf, start)
    off = start + _pub_fixed.size
    n = buf[off]
    # surrogateescape: a routing key need not be UTF-8 (codec.decode_shortstr).
    exchange = bytes(buf[off + 1 : off + 1 + n]).decode("utf-8", "surrogateescape")
    off += 1 + n
    n = buf[off]
    routing_key = bytes(buf[off + 1 : off + 1 + n]).decode("utf-8", "surrogateescape")
    off += 1 + n
    (hlen,) = _u32.unpack_from(buf, off)
    off += 4
    header = bytes(buf[off : off + hlen])
    body = bytes(buf[off + hlen : end])
    return Publish(seq, queue_id, flags, expires_ms, exchange, routing_key, header, body)


def publish_summary(buf: bytes | memoryview, start: int, end: int) -> tuple[int, int, int]:
    """(queue_id, body size, flags) of a PUBLISH without copying header or body."""
    queue_id, flags, _exp = _pub_fixed.unpack_from(buf, start)
    off = start + _pub_fixed.size
    off += 1 + buf[off]  # exchange
    off += 1 + buf[off]  # routing key
    (hlen,) = _u32.unpack_from(buf, off)
    return queue_id, end - (off + 4 + hlen), flags


def publish_header(buf: bytes | memoryview, start: int) -> bytes:
    """The content header of a PUBLISH (a copy of it, without the body); recovery reads
    a priority queue's message priorities from it."""
    off = start + _pub_fixed.size
    off += 1 + buf[off]  # exchange
    off += 1 + buf[off]  # routing key
    (hlen,) = _u32.unpack_from(buf, off)
    return bytes(buf[off + 4 : off + 4 + hlen])


def read_length(buf: bytes | memoryview, off: int) -> int:
    """Total size of the record starting at ``off`` (its length field + 4)."""
    return _u32.unpack_from(buf, off)[0] + 4


def decode_pairs(buf: bytes | memoryview, start: int) -> list[tuple[int, int]]:
    (count,) = _u32.unpack_from(buf, start)
    return [_pair.unpack_from(buf, start + 4 + 16 * i) for i in range(count)]


# (queue id, message id, delivery count, acquired count)
Counts = tuple[int, int, int, int]


def encode_returned(seq: int, entries: list[Counts]) -> bytes:
    payload = _u32.pack(len(entries)) + b"".join(_returned.pack(*e) for e in entries)
    return _frame(RETURNED, seq, payload)


def decode_returned(buf: bytes | memoryview, start: int) -> list[Counts]:
    (count,) = _u32.unpack_from(buf, start)
    return [_returned.unpack_from(buf, start + 4 + 24 * i) for i in range(count)]


# (delayed exchange store id, delayed message id, seqs of the dest PUBLISHes)
Fired = tuple[int, int, list[int]]


def encode_fired(seq: int, entries: list[Fired]) -> bytes:
    parts = [_u32.pack(len(entries))]
    for store_id, msg_id, dests in entries:
        parts.append(struct.pack(f">QQI{len(dests)}Q", store_id, msg_id, len(dests), *dests))
    return _frame(FIRED, seq, b"".join(parts))


def decode_fired(buf: bytes | memoryview, start: int) -> list[Fired]:
    (count,) = _u32.unpack_from(buf, start)
    off = start + 4
    out: list[Fired] = []
    for _ in range(count):
        store_id, msg_id, n = struct.unpack_from(">QQI", buf, off)
        off += 20
        out.append((store_id, msg_id, list(struct.unpack_from(f">{n}Q", buf, off))))
        off += 8 * n
    return out
