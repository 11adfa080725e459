"""What happens to a message whose work failed: requeue, retry (now or after a delay),
or dead-letter.

**Who counts.**  A broker *delivery limit* (quorum queues: 20 by default in RabbitMQ 4.x
and Hutch, ``x-delivery-limit`` or the ``delivery-limit`` policy; classic queues with
``x-delivery-limit`` on Hutch) counts every ``basic.reject`` with requeue, marks
redeliveries with ``x-delivery-count`` and dead-letters a message over the limit
itself.  The tool relies on that whenever it knows the queue has one, and then never
republishes.  It knows from:

1. the queue's arguments, learned at start (declare.py: ``x-queue-type: quorum``, or an
   ``x-delivery-limit``, whose value it then also knows);
2. any delivery that carries ``x-delivery-count`` or ``x-acquired-count`` (only a
   counting queue adds them; the tool strips them from its own copies): from then on
   for the rest of the run.  This is how a limit set only by a policy, or a quorum
   queue created by a plain declaration under a vhost default queue type, is noticed.

**The rule.**

- No ``--retries``, no ``--retry-delay``: ``basic.reject requeue=true`` (the seeds'
  at-least-once behaviour).  A reject, not a nack, because RabbitMQ 4.3 counts only a
  reject as a failed delivery: a queue with a limit dead-letters a poison message
  instead of looping on it for ever.
- ``--retries N`` on a counting queue: reject with requeue, attempt number from the
  broker's ``x-delivery-count``; after N retries (or the queue's own limit, if the
  arguments show a lower one) the tool gives up (below).
- ``--retries N`` elsewhere: republished to the tail of the queue with the
  ``x-hutch-attempts`` header; after N retries the tool gives up.
- ``--retry-delay MS``: a failed message is republished through a delayed exchange
  (``x-delayed-message``, ``x-delay: MS``) bound to the queue, so it comes back MS
  later instead of at once; ``x-hutch-attempts`` carries the count across copies
  (plus the broker's ``x-delivery-count`` of the current copy, for a worker that died
  holding it).  A copy is a new message to the broker, whose count starts again, so
  here the tool enforces the limit: ``--retries N``, else the queue's
  ``x-delivery-limit``, else 20 for a quorum queue (RabbitMQ 4.x's default), else
  none (retried every MS for ever, as the seeds retry at once).
- Giving up: to ``--dead-letter-queue`` with ``x-hutch-attempts``, ``x-hutch-error``
  and ``x-hutch-queue`` headers, or without one ``basic.reject requeue=false`` (the
  queue's own ``x-dead-letter-exchange``, if any, with reason ``rejected``).

A copy is always confirmed by the broker before the original is acked: a crash in
between gives a duplicate, never a loss.  A copy the broker does not confirm leaves
the original requeued.
"""

from __future__ import annotations

from typing import Any

ATTEMPTS_HEADER = "x-hutch-attempts"  # failed attempts so far
DELIVERY_COUNT = "x-delivery-count"   # the broker's count of failed deliveries
ACQUIRED_COUNT = "x-acquired-count"   # RabbitMQ 4.x / Hutch: returns of any kind so far
ERROR_HEADER = "x-hutch-error"        # why the last attempt failed
QUEUE_HEADER = "x-hutch-queue"        # the queue it was consumed from
DELAY_HEADER = "x-delay"              # the delayed exchange's per-message delay (ms)
# Set by the broker for one delivery: never carried into a copy.
_BROKER_HEADERS = (DELIVERY_COUNT, ACQUIRED_COUNT, DELAY_HEADER)

QUORUM_DEFAULT_LIMIT = 20  # RabbitMQ 4.x (and Hutch) quorum queues without a limit set


def broker_limit(arguments: dict[str, Any] | None) -> tuple[bool, int | None]:
    """(the broker counts failed deliveries, its limit if known) from the queue's
    arguments.  A negative limit is none; a quorum queue without one gets 20."""
    if not arguments:
        return False, None
    quorum = arguments.get("x-queue-type") == "quorum"
    limit = arguments.get("x-delivery-limit")
    if isinstance(limit, int) and not isinstance(limit, bool):
        return True, (limit if limit >= 0 else None)
    return quorum, (QUORUM_DEFAULT_LIMIT if quorum else None)


class Retrier:
    def __init__(self, channel: Any, queue: str, retries: int | None, dlq: str | None,
                 broker_counts: bool = False, limit: int | None = None,
                 delay_ms: int | None = None, delay_exchange: str | None = None) -> None:
        self.channel = channel
        # The broker counts this queue's failed deliveries (x-delivery-count).
        self.broker_counts = broker_counts
        self.queue = queue
        self.dlq = dlq
        self.delay_ms = delay_ms
        self.delay_exchange = delay_exchange
        if delay_ms is not None:
            # Copies restart the broker's count: the tool counts, to the limit it knows.
            self.retries = retries if retries is not None else limit
            if retries is not None and limit is not None:
                self.retries = min(retries, limit)
        elif retries is not None and broker_counts and limit is not None:
            self.retries = min(retries, limit)
        else:
            # --dead-letter-queue alone: dead-letter on the first failure.
            self.retries = retries if retries is not None else (0 if dlq else None)

    async def failed(self, message: Any, attempt: int, why: str) -> str:
        """Settle a failed message; returns what was done, for the worker's log line."""
        retry = self.retries is None or attempt <= self.retries
        of = "" if self.retries is None else f" of {self.retries}"
        if retry and self.delay_ms is not None:
            assert self.delay_exchange is not None
            if not await self._copy(message, self.delay_exchange, self.queue,
                                    {ATTEMPTS_HEADER: attempt, DELAY_HEADER: self.delay_ms}):
                return "requeued (the delayed copy was not confirmed)"
            return f"retry {attempt}{of} in {self.delay_ms} ms"
        if self.retries is None:
            await message.reject(requeue=True)
            return "requeued"
        if retry and self.broker_counts:
            await message.reject(requeue=True)  # counted by the broker
            return f"retry {attempt}{of} (requeued, counted by the broker)"
        if retry:
            if not await self._copy(message, "", self.queue, {ATTEMPTS_HEADER: attempt}):
                return "requeued (the copy was not confirmed)"
            return f"retry {attempt}{of}"
        if self.dlq is None:
            await message.reject(requeue=False)
            return f"rejected after {attempt} attempt(s)"
        if not await self._copy(message, "", self.dlq, {ATTEMPTS_HEADER: attempt,
                                                        ERROR_HEADER: why,
                                                        QUEUE_HEADER: self.queue}):
            return "requeued (the dead-letter copy was not confirmed)"
        return f"dead-lettered to '{self.dlq}' after {attempt} attempt(s)"

    def attempts(self, message: Any) -> int:
        """Failed attempts before this delivery: the tool's count over earlier copies
        plus the broker's over this one."""
        headers = message.headers or {}
        if DELIVERY_COUNT in headers or ACQUIRED_COUNT in headers:
            self.broker_counts = True  # only a counting queue adds these (see above)
        return _count(headers.get(ATTEMPTS_HEADER)) + _count(headers.get(DELIVERY_COUNT))

    async def _copy(self, message: Any, exchange: str, routing_key: str,
                    extra: dict[str, Any]) -> bool:
        """Publish a copy, then ack the original once the copy is confirmed; if it is
        not (nack, unroutable, channel trouble), requeue the original instead."""
        try:
            await self._republish(message, exchange, routing_key, extra)
        except Exception:
            await message.reject(requeue=True)
            return False
        await message.ack()
        return True

    async def _republish(self, message: Any, exchange: str, routing_key: str,
                         extra: dict[str, Any]) -> None:
        import aio_pika

        headers = {k: v for k, v in (message.headers or {}).items() if k not in _BROKER_HEADERS}
        copy = aio_pika.Message(
            message.body, headers={**headers, **extra},
            content_type=message.content_type, content_encoding=message.content_encoding,
            delivery_mode=message.delivery_mode, priority=message.priority,
            correlation_id=message.correlation_id, reply_to=message.reply_to,
            expiration=message.expiration, message_id=message.message_id,
            timestamp=message.timestamp, type=message.type, app_id=message.app_id)
        # (user_id is left out: the broker checks it against whoever publishes the copy.)
        # Confirmed (the channel has publisher confirms) before the original is acked.
        if exchange == "":
            # mandatory: a copy for a queue deleted meanwhile comes back, and then the
            # original is requeued rather than acked.
            await self.channel.default_exchange.publish(copy, routing_key=routing_key)
            return
        # Not mandatory: a delayed exchange routes only when the delay is over, so the
        # plugin answers basic.return NO_ROUTE to every mandatory publish (its README).
        target = await self.channel.get_exchange(exchange, ensure=False)
        await target.publish(copy, routing_key=routing_key, mandatory=False)


def _count(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0
