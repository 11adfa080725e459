"""A classic queue: ready messages, unacked bookkeeping, consumers, limits.

Dispatch is round-robin: the consumer that just got a message goes to the
back of the line, and a consumer that cannot take more (prefetch reached,
channel flow off, socket backed up) is skipped.  Dispatch does not run inline
on every enqueue/ack; the queue marks itself dirty with the broker's pump,
which dispatches every dirty queue once per event-loop turn and then flushes
all connections — a read of 100 publishes costs one dispatch pass.

Messages that come back (nack/reject with requeue, a consumer's channel
closing) return to their original position, ordered by ``seq``, as RabbitMQ
does; they are marked ``redelivered``.

A durable queue pages its backlog beyond an in-memory window out to the store:
see ``paging.py``.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .message import Message
from .paging import WINDOW, WINDOW_BYTES, WINDOW_MAX, PagingMixin

__all__ = ["WINDOW", "WINDOW_BYTES", "WINDOW_MAX", "Queue"]  # the window constants live in paging.py

if TYPE_CHECKING:
    from .consumer import Consumer
    from .vhost import Vhost

# Deliveries per dispatch pass.  Frames are only handed to the socket when the
# pump flushes, so without a cap one pass could copy a whole backlog into a
# slow no-ack consumer's write buffer; with it, the socket's high-water mark
# (pause_writing) gets a say every DISPATCH_BATCH messages.
DISPATCH_BATCH = 256

# A queue with consumers and more ready messages than this is congested: its
# publishers get a fair share of the loop, not all of it (Connection._after_publishing).
# WINDOW, the part of a backlog that always stays in memory.  Measured in the
# work-queue benchmark (bench/matrix.py (a)): with 16,384 the queue often ran deep
# enough to page and the consumer fell further behind (45.8k msgs/s, publish->deliver
# p99 265-542 ms); with 2,048, 51.5k msgs/s and p99 98-155 ms.
CONGESTED = WINDOW

# x-overflow values
DROP_HEAD = "drop-head"
REJECT_PUBLISH = "reject-publish"
REJECT_PUBLISH_DLX = "reject-publish-dlx"


class Queue(PagingMixin):
    is_exchange = False

    def __init__(self, vhost: Vhost, name: str, durable: bool, exclusive_owner: Any,
                 auto_delete: bool, arguments: dict[str, Any]) -> None:
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.exclusive_owner = exclusive_owner  # the owning connection, or None
        self.exclusive = exclusive_owner is not None
        self.auto_delete = auto_delete
        self.arguments = arguments
        self.ready: deque[Message] = deque()
        self.backlog: deque[Any] = deque()  # ints (paged out) or transient Messages
        self.paged = 0  # ints in the backlog: messages whose body is only on disk
        self.spill: deque[Message] = deque()  # newest, waiting to be written
        self.ready_bytes = 0  # body bytes of every ready message, paged or not
        # ready_bytes split by where the bodies are: paged_bytes only on disk (the
        # backlog's ints), held_bytes in memory outside ``ready`` (spill, transient
        # objects in the backlog); the rest is the in-memory window (_window_bytes).
        self.paged_bytes = 0
        self.held_bytes = 0
        self._page_out_waiting = False  # a store callback will page out the spill
        self.unacked_count = 0
        self.unacked_bytes = 0
        self.consumers: deque[Consumer] = deque()
        self.had_consumers = False
        self.exclusive_consumer: Consumer | None = None
        self.deleted = False
        self._next_seq = 1
        self._ttl_handle: Any = None
        self._expiry_handle: Any = None
        # Statistics (management API, metrics).
        self.published = 0
        self.delivered = 0
        self.acked = 0
        # Storage seam: set by the vhost for durable queues when a store is configured;
        # store_id is the queue's number in the message log (stable across restarts).
        self.store: Any = None
        self.store_id = 0
        # The definitions version that made it durable: its messages' confirms also
        # wait for that version to be on disk (store.log, MessageLog.add).
        self.defs_version = 0
        args = arguments
        self.max_length: int | None = args.get("x-max-length")
        self.max_length_bytes: int | None = args.get("x-max-length-bytes")
        self.overflow: str = args.get("x-overflow", DROP_HEAD)
        ttl = args.get("x-message-ttl")
        self.message_ttl: float | None = ttl / 1000.0 if ttl is not None else None
        exp = args.get("x-expires")
        self.expires: float | None = exp / 1000.0 if exp is not None else None
        self.dlx: str | None = args.get("x-dead-letter-exchange")
        self.dlrk: str | None = args.get("x-dead-letter-routing-key")
        self.queue_type: str = args.get("x-queue-type", "classic")

    # -- counts --------------------------------------------------------------
    @property
    def message_count(self) -> int:
        """Ready messages (in memory or paged out), as RabbitMQ's messages_ready."""
        return len(self.ready) + len(self.backlog) + len(self.spill)

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} ready={self.message_count} unacked={self.unacked_count}>"

    def is_behind(self) -> bool:
        """Ready messages that a consumer could take right now (publisher flow control)."""
        if self.deleted or not (self.ready or self.backlog or self.spill):
            return False
        return any(c.can_take() for c in self.consumers)

    def is_congested(self) -> bool:
        """Consumers are not keeping up: more ready messages than the in-memory window
        while someone consumes (publisher fair share, see Connection._after_publishing).
        A queue nobody consumes from is just a backlog, not congestion."""
        return bool(self.consumers) and self.message_count > CONGESTED

    def describe(self) -> str:
        return f"queue '{self.name}' in vhost '{self.vhost.name}'"

    # -- publishing ---------------------------------------------------------
    def would_overflow(self, size: int) -> bool:
        """True if a reject-publish queue is full (checked before enqueueing)."""
        if self.overflow == DROP_HEAD:
            return False
        if self.max_length is not None and self.message_count >= self.max_length:
            return True
        if self.max_length_bytes is not None and self.ready_bytes + size > self.max_length_bytes:
            return True
        return False

    def enqueue(self, msg: Message) -> None:
        msg.queue = self
        if self.message_ttl is not None:
            deadline = time.monotonic() + self.message_ttl
            if msg.expires_at is None or deadline < msg.expires_at:
                msg.expires_at = deadline
        size = len(msg.body)
        store = self.store
        if store is not None and msg.persistent:
            # Before anything is counted: if the store refuses the message, it is not
            # queued, and neither ready_bytes nor the memory alarm may keep its size.
            store.add(self, msg)
        self.ready_bytes += size
        self.published += 1
        self.vhost.broker.account(size)
        if store is not None:
            if self.spill or self.backlog or not self._room_in_memory():
                self.spill.append(msg)
                self.held_bytes += size
                self._page_out()
                if self.spill and not self._page_out_waiting:
                    # Page the tail of a burst out once it is written, without
                    # waiting for another publish to come and do it.
                    self._page_out_waiting = True
                    store.when_durable(self._written)
                if self.max_length is not None or self.max_length_bytes is not None:
                    self._enforce_limits()
                return
        msg.seq = self._next_seq
        self._next_seq += 1
        self.ready.append(msg)
        if self.max_length is not None or self.max_length_bytes is not None:
            self._enforce_limits()
        if msg.expires_at is not None:
            self._arm_ttl()
        if self.consumers:
            self.vhost.broker.pump.queue_dirty(self)

    def _enforce_limits(self) -> None:
        ready = self.ready
        while (self.max_length is not None and self.message_count > self.max_length) or (
            self.max_length_bytes is not None and self.ready_bytes > self.max_length_bytes
        ):
            if not ready:
                self._refill()
                if not ready:
                    break
            self._discard(self._pop_ready(), "maxlen")

    # -- consuming ---------------------------------------------------------
    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)
        self.had_consumers = True
        if consumer.exclusive:
            self.exclusive_consumer = consumer
        self._cancel_expiry()
        self.vhost.broker.pump.queue_dirty(self)

    def remove_consumer(self, consumer: Consumer) -> None:
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return
        if self.exclusive_consumer is consumer:
            self.exclusive_consumer = None
        if not self.consumers:
            if self.auto_delete and self.had_consumers and not self.deleted:
                self.vhost.delete_queue(self, reason="auto_delete")
                return
            self.touch()

    def dispatch(self) -> None:
        """Hand ready messages to consumers that can take them, round-robin."""
        ready = self.ready
        consumers = self.consumers
        if not consumers or self.deleted:
            return
        if (self.backlog or self.spill) and self._wants_refill():
            self._refill()
        if not ready:
            return
        now = time.monotonic()
        budget = DISPATCH_BATCH
        while ready and consumers:
            if not budget:
                # Come back next loop turn, after this batch has been written.
                loop = self.vhost.broker.loop
                loop.call_soon(self.vhost.broker.pump.queue_dirty, self)
                return
            budget -= 1
            for _ in range(len(consumers)):
                consumer = consumers[0]
                consumers.rotate(-1)
                if consumer.can_take():
                    break
            else:
                return  # nobody can take a message now; an ack or resume re-dirties us
            msg = self._pop_ready()
            if msg.expires_at is not None and msg.expires_at <= now:
                self._discard(msg, "expired")
                continue
            self._hand_to(consumer, msg)
            if not ready and (self.backlog or self.spill):
                self._refill()
        if ready and ready[0].expires_at is not None:
            self._arm_ttl()

    def _hand_to(self, consumer: Consumer, msg: Message) -> None:
        self.delivered += 1
        if msg.store_ref is not None and not msg.redelivered:
            self.store.delivered(self, msg)  # so a restart marks it redelivered
        consumer.delivered += 1
        if consumer.no_ack:
            self._settle(msg)
        else:
            msg.consumer = consumer
            consumer.unacked += 1
            self.unacked_count += 1
            self.unacked_bytes += len(msg.body)
        consumer.channel.deliver(consumer, msg)

    def get(self, no_ack: bool) -> Message | None:
        """basic.get: the head message, or None when the queue is empty."""
        self.touch()
        now = time.monotonic()
        while True:
            if (self.backlog or self.spill) and self._wants_refill():
                self._refill()
            if not self.ready:
                return None
            msg = self._pop_ready()
            if msg.expires_at is not None and msg.expires_at <= now:
                self._discard(msg, "expired")
                continue
            self.delivered += 1
            if msg.store_ref is not None and not msg.redelivered:
                self.store.delivered(self, msg)
            if no_ack:
                self._settle(msg)
            else:
                msg.consumer = None
                self.unacked_count += 1
                self.unacked_bytes += len(msg.body)
            return msg

    # -- settlement ----------------------------------------------------------
    def ack(self, msg: Message) -> None:
        """The holder acknowledged ``msg`` (or it was delivered with no-ack)."""
        self._release(msg)
        self.acked += 1
        self._settle(msg)

    def requeue(self, msgs: list[Message]) -> None:
        """Put unacked messages back at their original positions."""
        for msg in msgs:
            self._release(msg)
        if self.deleted:
            for msg in msgs:
                self._settle(msg)
            return
        ready = self.ready
        for msg in sorted(msgs, key=_seq, reverse=True):
            msg.redelivered = True
            if not ready or ready[0].seq > msg.seq:
                ready.appendleft(msg)
            else:
                i = 0
                n = len(ready)
                while i < n and ready[i].seq < msg.seq:
                    i += 1
                ready.insert(i, msg)
            self.ready_bytes += len(msg.body)
        if ready and ready[0].expires_at is not None:
            self._arm_ttl()
        if self.consumers:
            self.vhost.broker.pump.queue_dirty(self)

    def reject(self, msg: Message) -> None:
        """nack/reject without requeue: dead-letter or drop."""
        self._release(msg)
        if self.deleted:
            self._settle(msg)
            return
        self._discard(msg, "rejected")

    def _release(self, msg: Message) -> None:
        consumer = msg.consumer
        if consumer is not None:
            consumer.unacked -= 1
            msg.consumer = None
            if self.consumers:
                self.vhost.broker.pump.queue_dirty(self)
        self.unacked_count -= 1
        self.unacked_bytes -= len(msg.body)

    def _pop_ready(self) -> Message:
        msg = self.ready.popleft()
        self.ready_bytes -= len(msg.body)
        return msg

    def _settle(self, msg: Message) -> None:
        """The message leaves the queue for good."""
        self.vhost.broker.account(-len(msg.body))
        if msg.store_ref is not None and self.store is not None:
            self.store.remove(self, msg)

    def _discard(self, msg: Message, reason: str) -> None:
        """Drop a message (expired, over the limit, rejected), dead-lettering it if configured."""
        self._settle(msg)
        if self.dlx is not None:
            self.vhost.dead_letter(self, msg, reason)

    # -- purge / delete --------------------------------------------------------
    def purge(self) -> int:
        count = self.message_count
        while self.ready:
            self._settle(self._pop_ready())
        for item in self.backlog:
            if isinstance(item, int):
                self.store.remove_id(self, item >> 32)
            else:
                self._settle(item)
        self.backlog.clear()
        self.paged = 0
        while self.spill:
            self._settle(self.spill.popleft())
        self.ready_bytes = self.paged_bytes = self.held_bytes = 0
        return count

    def on_deleted(self) -> None:
        """Called by the vhost once the queue is unlinked."""
        self.deleted = True
        self.purge()
        self._cancel_expiry()
        if self._ttl_handle is not None:
            self._ttl_handle.cancel()
            self._ttl_handle = None

    # -- timers ----------------------------------------------------------------
    def _arm_ttl(self) -> None:
        head = self.ready[0] if self.ready else None
        if head is None or head.expires_at is None:
            return
        if self._ttl_handle is not None:
            if self._ttl_handle.when() <= head.expires_at:
                return
            self._ttl_handle.cancel()
        loop = self.vhost.broker.loop
        # asyncio's call_at uses loop.time(), which is time.monotonic() on every
        # loop we run on (asyncio and uvloop).
        self._ttl_handle = loop.call_at(head.expires_at, self._expire_head)

    def _expire_head(self) -> None:
        self._ttl_handle = None
        if self.deleted:
            return
        now = time.monotonic()
        ready = self.ready
        # Like RabbitMQ's classic queues, only expired messages at the head are dropped.
        while ready and ready[0].expires_at is not None and ready[0].expires_at <= now:
            self._discard(self._pop_ready(), "expired")
            if not ready and (self.backlog or self.spill):
                self._refill()
        self._arm_ttl()

    def touch(self) -> None:
        """The queue was used: restart its x-expires countdown if it has no consumers."""
        if self.expires is None or self.deleted:
            return
        self._cancel_expiry()
        if not self.consumers:
            loop = self.vhost.broker.loop
            self._expiry_handle = loop.call_later(self.expires, self._expire_queue)

    def _cancel_expiry(self) -> None:
        if self._expiry_handle is not None:
            self._expiry_handle.cancel()
            self._expiry_handle = None

    def _expire_queue(self) -> None:
        self._expiry_handle = None
        if not self.deleted and not self.consumers:
            self.vhost.delete_queue(self, reason="expired")


def _seq(msg: Message) -> int:
    return msg.seq
