"""A consumer: one basic.consume on one channel for one queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .consumer_order import consumer_priority

if TYPE_CHECKING:
    from .queue import Queue


class Consumer:
    __slots__ = (
        "arguments",
        "channel",
        "delivered",
        "exclusive",
        "no_ack",
        "prefetch",
        "priority",
        "queue",
        "tag",
        "tag_enc",
        "unacked",
    )

    def __init__(self, tag: str, channel: Any, queue: Queue, no_ack: bool, exclusive: bool,
                 prefetch: int, arguments: dict[str, Any]) -> None:
        self.tag = tag
        self.tag_enc = bytes((len(tag.encode()),)) + tag.encode()
        self.channel = channel  # server.channel.Channel (duck-typed to keep layers apart)
        self.queue = queue
        self.no_ack = no_ack
        self.exclusive = exclusive
        # Per-consumer prefetch limit (basic.qos global=false); 0 = unlimited.
        self.prefetch = prefetch
        self.unacked = 0
        self.arguments = arguments
        # x-priority (validated by arguments.check_consume_args); 0 when absent.
        self.priority = consumer_priority(arguments)
        self.delivered = 0

    def can_take(self) -> bool:
        """Whether the queue may hand this consumer one more message now."""
        if self.no_ack:
            return self.channel.can_deliver_no_ack()
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        return self.channel.can_deliver()
