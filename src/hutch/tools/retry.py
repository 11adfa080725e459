"""What happens to a message whose work failed: requeue, retry, or dead-letter.

Without ``--retries``/``--dead-letter-queue`` a failure is ``basic.reject requeue=true``
(the seeds' at-least-once behaviour).  It is a reject, not a nack, because RabbitMQ 4.3
counts only a reject as a failed delivery: on a queue with a broker delivery limit
(quorum queues, 20 by default; classic queues with ``x-delivery-limit`` on Hutch) the
broker dead-letters a poison message instead of looping on it for ever.

With ``--retries`` on a queue whose broker counts deliveries (a quorum queue, seen in
the 406 of the tool's own declaration), the tool relies on the broker: a failed message
is rejected with requeue, its attempt number is the broker's ``x-delivery-count`` + 1,
and once the attempts are used up it goes to the dead-letter queue as below (the
broker's own limit may dead-letter it first, with reason ``delivery_limit``).

On any other queue a failed message is republished to the tail of its queue carrying
an attempt counter header, and after the last attempt it goes to the dead-letter queue
(or is rejected, which sends it to the queue's own ``x-dead-letter-exchange`` if one
is set).  A copy is always confirmed by the broker before the original is acked: a
crash in between gives a duplicate, never a loss.
"""

from __future__ import annotations

from typing import Any

ATTEMPTS_HEADER = "x-hutch-attempts"  # failed attempts so far
DELIVERY_COUNT = "x-delivery-count"   # the broker's count of failed deliveries
ERROR_HEADER = "x-hutch-error"        # why the last attempt failed
QUEUE_HEADER = "x-hutch-queue"        # the queue it was consumed from


class Retrier:
    def __init__(self, channel: Any, queue: str, retries: int | None, dlq: str | None,
                 broker_counts: bool = False) -> None:
        self.channel = channel
        # The broker counts this queue's failed deliveries (x-delivery-count).
        self.broker_counts = broker_counts
        self.queue = queue
        # --dead-letter-queue alone: dead-letter on the first failure.
        self.retries = retries if retries is not None else (0 if dlq else None)
        self.dlq = dlq

    async def failed(self, message: Any, attempt: int, why: str) -> str:
        """Settle a failed message; returns what was done, for the worker's log line."""
        if self.retries is None:
            await message.reject(requeue=True)
            return "requeued"
        if attempt <= self.retries and self.broker_counts:
            await message.reject(requeue=True)  # counted by the broker
            return f"retry {attempt} of {self.retries} (requeued, counted by the broker)"
        if attempt <= self.retries:
            await self._republish(message, self.queue, {ATTEMPTS_HEADER: attempt})
            await message.ack()
            return f"retry {attempt} of {self.retries}"
        if self.dlq is None:
            await message.reject(requeue=False)
            return f"rejected after {attempt} attempt(s)"
        await self._republish(message, self.dlq, {ATTEMPTS_HEADER: attempt, ERROR_HEADER: why,
                                                  QUEUE_HEADER: self.queue})
        await message.ack()
        return f"dead-lettered to '{self.dlq}' after {attempt} attempt(s)"

    def attempts(self, message: Any) -> int:
        """Failed attempts before this delivery."""
        headers = message.headers or {}
        value = headers.get(DELIVERY_COUNT if self.broker_counts else ATTEMPTS_HEADER, 0)
        try:
            return max(0, int(value))
        except (TypeError, ValueError):
            return 0

    async def _republish(self, message: Any, queue: str, extra: dict[str, Any]) -> None:
        import aio_pika

        copy = aio_pika.Message(
            message.body, headers={**(message.headers or {}), **extra},
            content_type=message.content_type, content_encoding=message.content_encoding,
            delivery_mode=message.delivery_mode, priority=message.priority,
            correlation_id=message.correlation_id, reply_to=message.reply_to,
            expiration=message.expiration, message_id=message.message_id,
            timestamp=message.timestamp, type=message.type, app_id=message.app_id)
        # (user_id is left out: the broker checks it against whoever publishes the copy.)
        # Default exchange, routed by queue name: confirmed before the original is acked.
        await self.channel.default_exchange.publish(copy, routing_key=queue)
