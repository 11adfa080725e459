"""The in-memory form of one queued message.

One ``Message`` is one entry in one queue: a publish routed to three queues
makes three small ``Message`` objects sharing the same header and body bytes,
because ``redelivered``, the queue position and the consumer holding it are
per-queue facts.  ``__slots__`` keeps each entry near 100 bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .consumer import Consumer
    from .queue import Queue


class Message:
    __slots__ = (
        "body",
        "consumer",
        "exchange",
        "expires_at",
        "header",
        "persistent",
        "queue",
        "redelivered",
        "routing_key",
        "seq",
        "store_pos",
        "store_ref",
    )

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
        self.seq = 0
        self.queue: Queue | None = None
        self.consumer: Consumer | None = None
        # The store's id for a persistent message in a durable queue, and the offset
        # of its record once written (then the queue may drop the body from memory).
        self.store_ref: Any = None
        self.store_pos: int | None = None
