"""Returns counted per message: ``x-delivery-count``, ``x-acquired-count`` and the
delivery limit (poison messages).

Follows RabbitMQ 4.3's quorum queues (``rabbit_fifo.erl`` ``return_one`` /
``incr_msg_headers``, ``rabbit_fifo_client.erl`` ``add_delivery_count_header``,
``rabbit_channel.erl`` since rabbitmq-server#15387):

* every return of a message to its queue adds one to its *acquired* count;
* a return that says the delivery *failed* also adds one to its *delivery* count:
  ``basic.reject`` with requeue, and the consumer's channel or connection going
  away with the message unacked.  ``basic.nack`` with requeue, ``basic.recover``
  and a quorum consumer timeout return it without counting a failure;
* a failed return that takes the delivery count above the limit (``delivery_count >
  limit``) dead-letters the message with reason ``delivery_limit`` instead, or drops
  it when the queue has no dead-letter exchange (at most once, as RabbitMQ's
  default ``at-most-once`` strategy);
* a redelivery carries ``x-acquired-count`` (a long) once the message has been
  returned, and ``x-delivery-count`` once a return failed; the first delivery
  carries neither (RabbitMQ adds them as annotations, which become AMQP 0-9-1
  headers of type long, replacing a publisher's header of the same name).

Quorum queues always count (their default limit is 20, a negative limit is
unlimited); a classic queue counts only when it has a delivery limit (a Hutch
extension: RabbitMQ 4.x refuses ``x-delivery-limit`` on classic queues and 3.x
ignores it), so a classic queue without one pays nothing and sends no header.

The counts of a persistent message in a durable queue are written to the message
log (a RETURNED record, ``store/records.py``) so they survive a restart; each
unacked delivery also records the counts the message will have if its holder is
lost (``held``), so a crash counts that delivery as failed, and a message already
over the limit when it is next taken is dead-lettered then (``over_limit``).  The
header is re-encoded once per return, never per delivery: the common path still
sends the publisher's bytes unchanged.
"""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING

from ..protocol.codec import DecodeError, Int64
from ..protocol.frames import content_header_payload
from ..protocol.properties import decode_properties, encode_properties

if TYPE_CHECKING:
    from .message import Message
    from .queue import Queue
    from .queue_settings import QueueSettings

log = logging.getLogger("hutch.queue")

DELIVERY_COUNT = "x-delivery-count"
ACQUIRED_COUNT = "x-acquired-count"
_body_size = struct.Struct(">Q")


def counts_returns(settings: QueueSettings) -> bool:
    """Whether a queue with ``settings`` counts returns and annotates redeliveries."""
    return settings.queue_type == "quorum" or settings.delivery_limit is not None


def annotate(header: bytes, delivery_count: int, acquired_count: int) -> bytes:
    """``header`` (a content-header payload) with the count headers set.  A
    properties block that does not decode is passed on unchanged (Hutch does not
    decode properties on publish)."""
    try:
        props = decode_properties(header[12:])
    except DecodeError:
        return header
    headers = props.get("headers")
    headers = dict(headers) if isinstance(headers, dict) else {}
    headers[ACQUIRED_COUNT] = Int64(acquired_count)
    if delivery_count:
        headers[DELIVERY_COUNT] = Int64(delivery_count)
    else:
        headers.pop(DELIVERY_COUNT, None)
    props["headers"] = headers
    (size,) = _body_size.unpack_from(header, 4)
    return content_header_payload(size, encode_properties(props))


def returned(queue: Queue, msgs: list[Message], failed: bool) -> list[Message]:
    """Count one return of each of ``msgs`` (released from ``queue``'s unacked);
    those over the delivery limit are dead-lettered or dropped here.  Returns the
    ones that go back to the queue."""
    limit = queue.settings.delivery_limit
    message_log = queue.vhost.broker.store
    keep: list[Message] = []
    for msg in msgs:
        counts = msg.returns
        if counts is None:
            counts = msg.returns = [0, 0]
        counts[1] += 1
        if failed:
            counts[0] += 1
        if limit is not None and counts[0] > limit:
            queue.discard(msg, "delivery_limit")  # gone for good: an ACK, no count to keep
            continue
        if msg.msg_id is not None:
            message_log.returned(queue, msg)
        msg.header = annotate(msg.header, counts[0], counts[1])
        keep.append(msg)
    return keep


def held(queue: Queue, msg: Message) -> None:
    """A persistent ``msg`` of a counting queue was just handed out unacked: the log
    records the counts it will have if its holder is lost.  RabbitMQ 4.3's quorum
    queues count a consumer that is down after a restart as a failed delivery
    (``rabbit_fifo``: ``{down, Pid, noproc}`` returns its messages with reason
    ``down``); here a crash while the message is held leaves this record as the newest,
    so the restart counts that delivery as failed.  An ack removes the message, and any
    return records its real counts after this one (the newest record wins)."""
    counts = msg.returns or (0, 0)
    queue.vhost.broker.store.returned(queue, msg, (counts[0] + 1, counts[1] + 1))


def over_limit(queue: Queue, msg: Message) -> bool:
    """Whether ``msg``, about to be handed out, already failed more often than the
    limit allows (its holder was lost in a crash, or a policy lowered the limit): then
    it is dead-lettered or dropped here instead, as on a failed return."""
    limit = queue.settings.delivery_limit
    if limit is None or msg.returns is None or msg.returns[0] <= limit:
        return False
    queue.discard(msg, "delivery_limit")
    return True


def restore(msg: Message, counts: tuple[int, int]) -> None:
    """A message read back after a restart, with the counts the log kept for it."""
    msg.returns = [counts[0], counts[1]]
    msg.header = annotate(msg.header, counts[0], counts[1])
