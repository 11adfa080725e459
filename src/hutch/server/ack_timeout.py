"""Delivery acknowledgement timeout (RabbitMQ's ``consumer_timeout``).

Off unless configured: broker-wide by ``hutch serve --consumer-timeout MS`` (RabbitMQ's
``consumer_timeout`` key, whose default is 30 minutes; Hutch's default is none, because
its tutorials promise that a task may take as long as it needs), per queue by the
``x-consumer-timeout`` argument or the ``consumer-timeout`` policy key, which win over
the broker-wide value (RabbitMQ: ``rabbit_queue_type:get_consumer_timeout``).  The
queue's effective value is ``Queue.ack_timeout``.

What a timeout does depends on the queue type, as on RabbitMQ:

* classic queues follow RabbitMQ 4.2 (``rabbit_channel:evaluate_consumer_timeout``;
  4.3 stopped evaluating timeouts for classic queues altogether): the channel's
  *oldest* unacknowledged delivery is looked at, and once it is older than its queue's
  timeout the channel is closed with 406 PRECONDITION_FAILED "delivery acknowledgement
  on channel N timed out. ..."; its unacked messages go back to their queues;
* quorum queues follow RabbitMQ 4.3 (``rabbit_fifo`` ``evaluate_consumer_timeout``,
  ``rabbit_channel`` ``{released, ..., timeout}``): the timed-out messages go back to
  the queue (a return that is not a failed delivery, broker/redelivery.py), and the
  consumer is cancelled with a server ``basic.cancel`` when the client advertised
  ``consumer_cancel_notify``, otherwise the channel is closed as above.  A late ack of
  a returned delivery tag is ignored, as RabbitMQ's settle of an unknown id is.

Granularity: the channel arms one timer, at the moment its oldest timed delivery
would expire, and re-arms it from there (at least once a second while the oldest
unacked delivery has no timeout): no periodic work for a channel without timed
deliveries, and a timeout fires within milliseconds of its deadline rather than on
RabbitMQ's 1-minute channel tick.  Only deliveries made while the queue had a
timeout carry a delivery time (``Message.delivered_at``), so that the hot path of a
queue without one pays a single attribute check.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ..errors import ChannelError
from ..protocol import constants as rc
from ..protocol import methods as m

if TYPE_CHECKING:
    from ..broker.message import Message
    from .channel import Channel

log = logging.getLogger("hutch.channel")

# While the oldest unacked delivery has no timeout, look again this often (seconds).
TICK = 1.0


def track(channel: Channel, msg: Message) -> None:
    """``msg`` was just delivered, unacked, from a queue with a consumer timeout."""
    msg.delivered_at = now = time.monotonic()
    deadline = now + _seconds(msg)
    timer = channel.ack_timer
    # One timer per channel, at the earliest moment something may have timed out (a
    # queue with a shorter timeout may make that sooner than the timer armed).
    if timer is None or timer.when() > deadline:
        if timer is not None:
            timer.cancel()
        channel.ack_timer = channel.conn.broker.loop.call_at(deadline, _check, channel)


def stop(channel: Channel) -> None:
    if channel.ack_timer is not None:
        channel.ack_timer.cancel()
        channel.ack_timer = None


def _seconds(msg: Message) -> float:
    q = msg.queue
    timeout = q.ack_timeout if q is not None else None
    return TICK if timeout is None else timeout / 1000.0


def _check(channel: Channel) -> None:
    channel.ack_timer = None
    if channel.closing:
        return
    unacked = channel.unacked
    if not unacked:
        return  # the next timed delivery arms the timer again
    now = time.monotonic()
    loop = channel.conn.broker.loop
    tag, msg = next(iter(unacked.items()))
    q = msg.queue
    delivered_at = getattr(msg, "delivered_at", None)
    timeout = q.ack_timeout if q is not None else None
    if delivered_at is None or timeout is None:
        channel.ack_timer = loop.call_at(now + TICK, _check, channel)
        return
    deadline = delivered_at + timeout / 1000.0
    if now < deadline:
        channel.ack_timer = loop.call_at(deadline, _check, channel)
        return
    if q is not None and q.queue_type == "quorum":
        _release_quorum(channel, now)
        if not channel.closing and channel.unacked:
            channel.ack_timer = loop.call_at(now, _check, channel)  # the new oldest's deadline
        return
    consumer = msg.consumer
    log.warning("Consumer '%s' on channel %d and %s has timed out waiting for a consumer "
                "acknowledgement of a delivery with delivery tag = %d. Timeout used: %d ms. "
                "This timeout value can be configured, see consumers doc guide to learn more",
                consumer.tag if consumer is not None else "", channel.number,
                q.describe() if q is not None else "a deleted queue", tag, timeout)
    channel.error(timed_out(channel.number, timeout))


def timed_out(number: int, timeout: int) -> ChannelError:
    return ChannelError(rc.PRECONDITION_FAILED,
                        f"delivery acknowledgement on channel {number} timed out. "
                        f"Timeout value used: {timeout} ms. This timeout value can be "
                        f"configured, see consumers doc guide to learn more")


def _release_quorum(channel: Channel, now: float) -> None:
    """RabbitMQ 4.3's quorum-queue timeout: every expired delivery of a quorum queue on
    this channel goes back to its queue, and the consumers that held them are cancelled."""
    deliveries = channel.deliveries
    expired: list[tuple[int, Message]] = []
    for tag, msg in deliveries.unacked.items():
        q = msg.queue
        at = getattr(msg, "delivered_at", None)
        if (q is not None and q.queue_type == "quorum" and at is not None
                and q.ack_timeout is not None and now >= at + q.ack_timeout / 1000.0):
            expired.append((tag, msg))
    consumers: dict[str, Any] = {}
    timeouts: dict[str, int] = {}
    for tag, msg in expired:
        del deliveries.unacked[tag]
        deliveries.released.add(tag)
        c = msg.consumer
        if c is not None and deliveries.consumers.get(c.tag) is c:
            consumers[c.tag] = c
            timeouts[c.tag] = (msg.queue.ack_timeout if msg.queue is not None else 0) or 0
    # Cancelled first, so that the returned messages go to another consumer.
    notify = channel.conn.capabilities.get("consumer_cancel_notify")
    for ctag, c in consumers.items():
        log.warning("Consumer '%s' on channel %d and %s has timed out waiting for a consumer "
                    "acknowledgement. Timeout used: %d ms. Its timed-out messages are "
                    "returned to the queue and the consumer is cancelled",
                    ctag, channel.number, c.queue.describe(), timeouts[ctag])
        deliveries.consumers.pop(ctag, None)
        c.queue.remove_consumer(c)
        if notify:
            channel.conn.send_method(channel.number, m.BasicCancel(consumer_tag=ctag, nowait=True))
    deliveries.settle_negative([msg for _t, msg in expired], requeue=True)
    if consumers and not notify:
        # A client that cannot be told its consumer is gone (RabbitMQ's fallback).
        channel.error(timed_out(channel.number, next(iter(timeouts.values()))))
