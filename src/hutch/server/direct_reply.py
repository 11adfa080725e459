"""Direct reply-to: the ``amq.rabbitmq.reply-to`` pseudo-queue, as RabbitMQ 3.10 does it.

rabbit_channel: a channel consumes from ``amq.rabbitmq.reply-to`` (no-ack only, one
such consumer per channel); a message it publishes with that ``reply_to`` has it
rewritten to ``amq.rabbitmq.reply-to.<token>``; whoever answers publishes to the
default exchange with that routing key, and rabbit_exchange:route hands the message
straight to the consumer, with no queue in between.  The texts of its errors:

* consume with acks: 406 ``reply consumer cannot acknowledge``;
* a second consume on the channel: 406 ``reply consumer already set``;
* ``reply_to`` set to it on a channel without that consumer: 406
  ``fast reply consumer does not exist``.

A reply to an unknown or gone token is dropped.  As in RabbitMQ, a reply never
counts as routed to a queue: with ``mandatory`` it is delivered *and* returned
(``NO_ROUTE``).  ``queue.declare`` of the pseudo-queue (passive or not) answers
declare-ok with 0 messages and 1 consumer; FastStream declares it passively at start.
"""

from __future__ import annotations

import base64
import os
import struct
from typing import TYPE_CHECKING, Any

from ..broker.consumer import Consumer
from ..broker.message import Message
from ..broker.vhost import REPLY_TO_PREFIX, server_named
from ..errors import ChannelError, HardError
from ..protocol import constants as rc
from ..protocol import methods as m
from ..protocol.codec import encode_shortstr
from ..protocol.properties import _skip_flags

if TYPE_CHECKING:
    from .channel import Channel

# The vhost knows the prefix: it reports a publish to it (Vhost.publish, DIRECT_REPLY).
PREFIX = REPLY_TO_PREFIX
PSEUDO_QUEUE = PREFIX[:-1]  # amq.rabbitmq.reply-to
# The pseudo-queue's name as a short string inside a content header: a publish is only
# looked at closely (``rewrite_reply_to``) when its reply_to flag is set and this occurs.
MARK = bytes([len(PSEUDO_QUEUE)]) + PSEUDO_QUEUE.encode()
REPLY_TO_FLAG_HIGH = 0x02  # reply_to is bit 9 of the property flags: the high byte's bit 1

_u32 = struct.Struct(">I")
# token (what follows PREFIX) -> the consuming channel and its consumer.  Tokens are
# random, so one table serves every broker in the process (checked on delivery).
_consumers: dict[str, tuple[Channel, Consumer]] = {}


def consume(ch: Channel, method: Any) -> None:
    """basic.consume on the pseudo-queue (rabbit_channel's clause for it)."""
    tag = method.consumer_tag
    if tag and tag in ch.consumers:
        raise HardError(rc.NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'")
    if not method.no_ack:
        raise ChannelError(rc.PRECONDITION_FAILED, "reply consumer cannot acknowledge")
    if ch.reply_consumer is not None:
        raise ChannelError(rc.PRECONDITION_FAILED, "reply consumer already set")
    tag = tag or server_named("amq.ctag-")
    # RabbitMQ's token is base64(channel pid) "." base64(random key); the key part alone
    # makes it unguessable, the first part keeps the shape clients have seen.
    token = (base64.b64encode(os.urandom(12)).decode() + "."
             + base64.b64encode(os.urandom(16)).decode())
    consumer = Consumer(tag, ch, None, True, False, 0, {})  # type: ignore[arg-type]
    ch.reply_consumer = (token, consumer)
    _consumers[token] = (ch, consumer)
    if not method.nowait:
        ch.reply(m.BasicConsumeOk(consumer_tag=tag))  # in order behind held replies


def cancel(ch: Channel, method: Any) -> bool:
    """basic.cancel of the reply consumer: True if it was that one (and is answered)."""
    if ch.reply_consumer is None or ch.reply_consumer[1].tag != method.consumer_tag:
        return False
    forget(ch)
    if not method.nowait:
        ch.reply(m.BasicCancelOk(consumer_tag=method.consumer_tag))
    return True


def forget(ch: Channel) -> None:
    """The reply consumer goes (cancel, channel or connection closed): later replies to
    its token are dropped."""
    if ch.reply_consumer is not None:
        _consumers.pop(ch.reply_consumer[0], None)
        ch.reply_consumer = None


def declare(ch: Channel, method: Any) -> None:
    """queue.declare of a name starting with the pseudo-queue's (RabbitMQ matches that
    prefix before any other check): the pseudo-queue itself or a live token exists."""
    name = method.queue
    if name != PSEUDO_QUEUE:
        entry = _consumers.get(name[len(PREFIX):]) if name.startswith(PREFIX) else None
        if entry is None or entry[0].conn.broker is not ch.conn.broker:
            raise ChannelError(rc.NOT_FOUND, f"no queue '{name}' in vhost '{ch.vhost.name}'")
    if not method.nowait:
        ch.reply(m.QueueDeclareOk(queue=name, message_count=0, consumer_count=1))


def rewrite_reply_to(ch: Channel, header: bytes) -> bytes:
    """The content header of a publish whose properties may say
    ``reply_to=amq.rabbitmq.reply-to``: the same bytes with the channel's token in
    its place, or 406 when the channel does not consume from the pseudo-queue."""
    props = header[12:]
    try:
        flags, off = _skip_flags(props)
        if flags & (1 << 15):  # content_type
            off += 1 + props[off]
        if flags & (1 << 14):  # content_encoding
            off += 1 + props[off]
        if flags & (1 << 13):  # headers
            off += 4 + _u32.unpack_from(props, off)[0]
        off += bool(flags & (1 << 12)) + bool(flags & (1 << 11))  # delivery_mode, priority
        if flags & (1 << 10):  # correlation_id
            off += 1 + props[off]
        end = off + 1 + props[off]
    except (IndexError, struct.error):
        return header  # malformed properties are passed on untouched, as any others
    if props[off:end] != MARK:
        return header
    if ch.reply_consumer is None:
        raise ChannelError(rc.PRECONDITION_FAILED, "fast reply consumer does not exist")
    start = 12 + off
    return header[:start] + encode_shortstr(PREFIX + ch.reply_consumer[0]) + header[12 + end:]


def deliver_reply(ch: Channel, routing_key: str, header: bytes, body: bytes) -> None:
    """A publish to the default exchange with an ``amq.rabbitmq.reply-to.<token>``
    routing key that names no queue (the vhost said DIRECT_REPLY): straight to the
    token's consumer, if it is there."""
    entry = _consumers.get(routing_key[len(PREFIX):])
    if entry is None:
        return
    target, consumer = entry
    if target.conn.broker is not ch.conn.broker or target.closing:
        return
    msg = Message("", routing_key, header, body, False, None)
    # In order behind the target channel's held replies (its consume-ok may still wait
    # for a definitions write): a delivery must never name a tag not yet given out.
    def deliver() -> None:
        if not target.closing:
            target.deliver(consumer, msg)
    target.in_order(deliver)
