"""What one channel has handed out: its consumers, its delivery tags, and the messages
still unacknowledged under them.

The channel assigns tags as it delivers (``next_tag``, ``unacked``: read and written
inline on the delivery hot path); everything that settles messages — ack, reject,
nack, recover, rollback, the channel going away — goes through here.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..broker.consumer import Consumer
from ..broker.message import Message
from ..errors import ChannelError
from ..protocol import constants as rc

# (delivery tag, message) pairs an ack, reject or nack covers.
Taken = list[tuple[int, Message]]


class Deliveries:
    __slots__ = ("consumers", "next_tag", "released", "unacked")

    def __init__(self) -> None:
        self.consumers: dict[str, Consumer] = {}
        # delivery tag -> Message, in tag order (OrderedDict pops from the front in O(1)).
        self.unacked: OrderedDict[int, Message] = OrderedDict()
        self.next_tag = 1
        # Tags whose messages the queue took back (a quorum consumer timeout,
        # ack_timeout.py): settling one later is ignored, as RabbitMQ ignores it.
        self.released: set[int] = set()

    def take(self, tag: int, multiple: bool) -> Taken:
        """Remove and return (tag, message) for every unacked message an
        ack/nack/reject with ``tag`` covers; ``multiple`` with tag 0 means all."""
        unacked = self.unacked
        if multiple:
            if tag == 0:
                taken = list(unacked.items())
                unacked.clear()
                return taken
            taken = []
            while unacked:
                if next(iter(unacked)) > tag:
                    break
                taken.append(unacked.popitem(last=False))
            if not taken and tag >= self.next_tag:
                raise ChannelError(rc.PRECONDITION_FAILED, f"unknown delivery tag {tag}")
            return taken
        msg = unacked.pop(tag, None)
        if msg is None:
            if tag in self.released:
                self.released.discard(tag)
                return []
            raise ChannelError(rc.PRECONDITION_FAILED, f"unknown delivery tag {tag}")
        return [(tag, msg)]

    @staticmethod
    def ack(taken: Taken) -> None:
        for _tag, msg in taken:
            q = msg.queue
            if q is not None:
                q.ack(msg)

    @staticmethod
    def settle_negative(msgs: list[Message], requeue: bool, failed: bool = False) -> None:
        """Requeue (each queue's in one go, back at their places) or reject ``msgs``.
        ``failed``: a requeue that counts as a failed delivery (broker/redelivery.py)."""
        if requeue:
            by_queue: dict[Any, list[Message]] = {}
            for msg in msgs:
                if msg.queue is not None:
                    by_queue.setdefault(msg.queue, []).append(msg)
            for q, group in by_queue.items():
                q.requeue(group, failed)
        else:
            for msg in msgs:
                if msg.queue is not None:
                    msg.queue.reject(msg)

    def requeue_all(self, failed: bool = False) -> None:
        """Every unacked message goes back to its queue (basic.recover; channel closed,
        which counts as a failed delivery)."""
        if self.unacked:
            msgs = list(self.unacked.values())
            self.unacked.clear()
            self.settle_negative(msgs, requeue=True, failed=failed)

    def restore(self, taken: Taken) -> None:
        """Acks undone (tx.rollback): the messages are unacked again, under their old
        tags, in tag order."""
        restored = dict(self.unacked)
        restored.update(taken)
        self.unacked.clear()
        self.unacked.update(sorted(restored.items()))

    def cancel_all(self) -> None:
        """Forget every consumer (the channel is going away)."""
        for c in list(self.consumers.values()):
            c.queue.remove_consumer(c)
        self.consumers.clear()
