"""What happens to a message whose work failed: requeue, retry, or dead-letter.

Without ``--retries``/``--dead-letter-queue`` a failure is ``basic.nack requeue=true``
(the seeds' at-least-once behaviour; a poison message loops).  With them, a failed
message is republished to the tail of its queue carrying an attempt counter header,
and after the last attempt it goes to the dead-letter queue (or is rejected, which
sends it to the queue's own ``x-dead-letter-exchange`` if one is set).  A copy is
always confirmed by the broker before the original is acked: a crash in between
gives a duplicate, never a loss.
"""

from __future__ import annotations

from typing import Any

ATTEMPTS_HEADER = "x-hutch-attempts"  # failed attempts so far
ERROR_HEADER = "x-hutch-error"        # why the last attempt failed
QUEUE_HEADER = "x-hutch-queue"        # the queue it was consumed from


class Retrier:
    def __init__(self, channel: Any, queue: str, retries: int | None, dlq: str | None) -> None:
        self.channel = channel
        self.queue = queue
        # --dead-letter-queue alone: dead-letter on the first failure.
        self.retries = retries if retries is not None else (0 if dlq else None)
        self.dlq = dlq

    async def failed(self, message: Any, attempt: int, why: str) -> str:
        """Settle a failed message; returns what was done, for the worker's log line."""
        if self.retries is None:
            await message.nack(requeue=True)
            return "requeued"
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
