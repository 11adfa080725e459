"""The in-memory form of one queued message.

One ``Message`` is one entry in one queue: a publish routed to three queues
makes three small ``Message`` objects sharing the same header and body bytes,
because ``redelivered``, the queue position and the consumer holding it are
per-queue facts.  ``__slots__`` keeps each entry near 100 bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .consumer import Consumer
    from .queue import Queue


class Message:
    __slots__ = (
        "body",
        "consumer",
        "delivered_at",
        "exchange",
        "expires_at",
        "header",
        "msg_id",
        "persistent",
        "position",
        "queue",
        "redelivered",
        "returns",
        "routing_key",
        "store_pos",
    )

    delivered_at: float  # see __init__

    def __init__(self, exchange: str, routing_key: str, header: bytes, body: bytes,
                 persistent: bool, expires_at: float | None = None) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        # The whole content-header frame payload as received: class-id, weight,
        # body-size and the raw property bytes, resent unchanged on delivery.
        self.header = header
        self.body = body
        self.persistent = persistent
        # Monotonic deadline in seconds, or None for "never expires".
        self.expires_at = expires_at
        self.redelivered = False
        # [delivery count, acquired count] once the message came back to a queue that
        # counts returns (broker/redelivery.py); None until then.
        self.returns: list[int] | None = None
        # ``delivered_at`` (monotonic seconds) is only set, and only read, for deliveries
        # from a queue with a consumer timeout (server/ack_timeout.py): left unset here
        # so that the common path does not pay for it.
        # Its place in the queue's in-memory order: a requeued message goes back
        # before every message with a higher position (see broker/queue_store).
        self.position = 0
        self.queue: Queue | None = None
        self.consumer: Consumer | None = None
        # The message log's id for a persistent message in a durable queue (None: no
        # durable copy), and the offset of its record once written (then the queue's
        # store may drop the body from memory).  Set by ``store.log.MessageLog``.
        self.msg_id: int | None = None
        self.store_pos: int | None = None
