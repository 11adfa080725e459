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
  ``rabbit_channel`` ``{released, ..., timeout}``): each queue times out *every* one of
  its deliveries, whatever older delivery the channel holds.  The timed-out messages go
  back to the queue (a return that is not a failed delivery, broker/redelivery.py), and
  the consumer is cancelled with a server ``basic.cancel`` when the client advertised
  ``consumer_cancel_notify``, otherwise the channel is closed as above.  A consumer
  Hutch so cancelled keeps its tag: its younger deliveries just go back at their own
  deadlines.  A timed-out delivery that no consumer of the channel holds — a
  ``basic.get`` (4.3 gives it a one-off consumer with the queue's timeout), or one
  whose consumer the client cancelled — takes RabbitMQ's fallback: the message goes
  back and the channel is closed with the 406 above (RabbitMQ prints "Timeout value
  used: -1 ms" there, Hutch the queue's value).  A late ack of a returned delivery
  tag is ignored, as RabbitMQ's settle of an unknown id is.  A deleted queue times
  nothing out.

Granularity: the channel arms one timer, at the earliest deadline of its timed
deliveries (a classic one that is past its deadline but not the oldest is looked at
again once a second, as it times out once it becomes the oldest), and re-arms it from
there: no periodic work for a channel without timed deliveries, and a timeout fires
within milliseconds of its deadline rather than on RabbitMQ's 1-minute channel tick.
Only deliveries made while the queue had a timeout carry a delivery time
(``Message.delivered_at``), so that the hot path of a queue without one pays a single
attribute check; the timer's check walks the channel's unacked deliveries once.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import ChannelError
from ..protocol import constants as rc
from ..protocol import methods as m

if TYPE_CHECKING:
    from ..broker.consumer import Consumer
    from ..broker.message import Message
    from .channel import Channel

log = logging.getLogger("hutch.channel")

# How often a classic delivery past its deadline, behind an older one, is looked at (s).
TICK = 1.0

# Per channel, the consumers Hutch cancelled on a quorum timeout that still hold
# deliveries: those are returned on their own timeouts without closing the channel.
_timed_out: weakref.WeakKeyDictionary[Channel, set[Consumer]] = weakref.WeakKeyDictionary()


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
    _timed_out.pop(channel, None)
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
        _timed_out.pop(channel, None)
        return  # the next timed delivery arms the timer again
    now = time.monotonic()
    # Classic queues (RabbitMQ 4.2): only the oldest unacked delivery counts.
    oldest_tag, oldest = next(iter(unacked.items()))
    q = oldest.queue
    if q is None or q.queue_type != "quorum":
        deadline = _deadline(oldest)
        if deadline is not None and now >= deadline:
            timeout = q.ack_timeout if q is not None else None
            consumer = oldest.consumer
            log.warning("Consumer '%s' on channel %d and %s has timed out waiting for a "
                        "consumer acknowledgement of a delivery with delivery tag = %d. "
                        "Timeout used: %d ms. This timeout value can be configured, see "
                        "consumers doc guide to learn more",
                        consumer.tag if consumer is not None else "", channel.number,
                        q.describe() if q is not None else "a deleted queue", oldest_tag,
                        timeout or 0)
            channel.error(timed_out(channel.number, timeout or 0))
            return
    # Quorum queues (RabbitMQ 4.3): each queue times out every delivery of its own,
    # whatever else the channel holds.  One pass finds those and the next deadline.
    expired: list[tuple[int, Message]] = []
    next_at: float | None = None
    for tag, msg in unacked.items():
        deadline = _deadline(msg)
        if deadline is None:
            continue
        q = msg.queue
        if q is not None and q.queue_type == "quorum":
            if q.deleted:
                continue  # a deleted queue times nothing out
            if now >= deadline:
                expired.append((tag, msg))
                continue
        elif now >= deadline:
            # A classic delivery behind an older one: it times out once it is the
            # oldest (an ack the timer does not see), so look again in a while.
            deadline = now + TICK
        if next_at is None or deadline < next_at:
            next_at = deadline
    if expired:
        _release_quorum(channel, expired)
        if channel.closing:
            return
    if next_at is not None:
        channel.ack_timer = channel.conn.broker.loop.call_at(next_at, _check, channel)
    else:
        _timed_out.pop(channel, None)


def _deadline(msg: Message) -> float | None:
    """When ``msg``'s delivery times out; None when it was not timed."""
    at = getattr(msg, "delivered_at", None)
    q = msg.queue
    timeout = q.ack_timeout if q is not None else None
    if at is None or timeout is None:
        return None
    return at + timeout / 1000.0


def timed_out(number: int, timeout: int) -> ChannelError:
    return ChannelError(rc.PRECONDITION_FAILED,
                        f"delivery acknowledgement on channel {number} timed out. "
                        f"Timeout value used: {timeout} ms. This timeout value can be "
                        f"configured, see consumers doc guide to learn more")


def _release_quorum(channel: Channel, expired: list[tuple[int, Message]]) -> None:
    """RabbitMQ 4.3's quorum-queue timeout: the ``expired`` deliveries go back to their
    queues, and the live consumers that held them are cancelled.  A delivery no live
    consumer holds (basic.get, or a consumer the client cancelled) is, as
    rabbit_channel's fallback for a tag it does not know, a channel error."""
    deliveries = channel.deliveries
    live = deliveries.consumers
    cancelled = _timed_out.get(channel)
    consumers: dict[str, Any] = {}
    timeouts: dict[str, int] = {}
    orphan: tuple[int, Message] | None = None
    for tag, msg in expired:
        del deliveries.unacked[tag]
        deliveries.released.add(tag)
        c = msg.consumer
        if c is not None and live.get(c.tag) is c:
            consumers[c.tag] = c
            timeouts[c.tag] = _timeout(msg)
        elif orphan is None and (c is None or cancelled is None or c not in cancelled):
            # (A consumer Hutch itself cancelled on a timeout keeps its tag, as on
            # RabbitMQ 4.3: its younger deliveries just go back.)
            orphan = (tag, msg)
    # Cancelled first, so that the returned messages go to another consumer.
    notify = channel.conn.capabilities.get("consumer_cancel_notify")
    for ctag, c in consumers.items():
        log.warning("Consumer '%s' on channel %d and %s has timed out waiting for a consumer "
                    "acknowledgement. Timeout used: %d ms. Its timed-out messages are "
                    "returned to the queue and the consumer is cancelled",
                    ctag, channel.number, c.queue.describe(), timeouts[ctag])
        live.pop(ctag, None)
        c.queue.remove_consumer(c)
        if notify:
            channel.conn.send_method(channel.number, m.BasicCancel(consumer_tag=ctag, nowait=True))
    if consumers:
        if cancelled is None:
            cancelled = _timed_out[channel] = set()
        cancelled.update(consumers.values())
    deliveries.settle_negative([msg for _t, msg in expired], requeue=True)
    if cancelled:
        # Forget the cancelled consumers that hold nothing any more.
        held = {msg.consumer for msg in deliveries.unacked.values()}
        cancelled.intersection_update(held)
    if orphan is not None:
        tag, msg = orphan
        q = msg.queue
        log.warning("Delivery with delivery tag = %d on channel %d from %s has timed out "
                    "waiting for an acknowledgement and no consumer of the channel holds "
                    "it. Timeout used: %d ms. The channel is closed",
                    tag, channel.number, q.describe() if q is not None else "a deleted queue",
                    _timeout(msg))
        channel.error(timed_out(channel.number, _timeout(msg)))
    elif consumers and not notify:
        # A client that cannot be told its consumer is gone (RabbitMQ's fallback).
        channel.error(timed_out(channel.number, next(iter(timeouts.values()))))


def _timeout(msg: Message) -> int:
    q = msg.queue
    return (q.ack_timeout if q is not None else None) or 0
