"""A classic queue: ready messages, unacked bookkeeping, consumers, limits.

Dispatch is round-robin: the consumer that just got a message goes to the
back of the line, and a consumer that cannot take more (prefetch reached,
channel flow off, socket backed up) is skipped.  Dispatch does not run inline
on every enqueue/ack; the queue marks itself dirty with the broker's pump,
which dispatches every dirty queue once per event-loop turn and then flushes
all connections — a read of 100 publishes costs one dispatch pass.

Messages that come back (nack/reject with requeue, a consumer's channel
closing) return to their original position, as RabbitMQ does; they are marked
``redelivered``.

Where the ready messages live is the queue's message store (``queue_store/``): a
deque for a transient queue, the paged window over the message log for a durable
one.  The queue only pushes, shifts, requeues and settles.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from ..errors import ChannelError
from ..protocol import constants as rc
from .consumer_order import Picker, PriorityLine, SingleActive
from .message import Message
from .queue_settings import DROP_HEAD, QueueSettings, queue_settings
from .queue_store import QueueStore
from .queue_store.memory import MemoryStore
from .queue_store.paged import WINDOW, WINDOW_BYTES, WINDOW_MAX, PagedStore
from .queue_store.priority import PriorityStore, levels_for
from .redelivery import counts_returns, held, over_limit, returned

# The window constants live in queue_store/paged.py.
__all__ = ["WINDOW", "WINDOW_BYTES", "WINDOW_MAX", "Queue"]

if TYPE_CHECKING:
    from .consumer import Consumer
    from .vhost import Vhost

# Deliveries per dispatch pass.  Frames are only handed to the socket when the
# pump flushes, so without a cap one pass could copy a whole backlog into a
# slow no-ack consumer's write buffer; with it, the socket's high-water mark
# (pause_writing) gets a say every DISPATCH_BATCH messages.
DISPATCH_BATCH = 256

# A queue with consumers and more ready messages than this is congested: its
# publishers get a fair share of the loop, not all of it (FlowControl.after_read, server/flow.py).
# WINDOW, the part of a backlog that always stays in memory.  Measured in the
# work-queue benchmark (bench/matrix.py (a)): with 16,384 the queue often ran deep
# enough to page and the consumer fell further behind (45.8k msgs/s, publish->deliver
# p99 265-542 ms); with 2,048, 51.5k msgs/s and p99 98-155 ms.
CONGESTED = WINDOW



class Queue:
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
        # Storage: a durable queue of a broker with a data dir keeps its messages in
        # the message log (paged beyond a window), any other queue in memory.
        # store_id is the queue's number in the message log (stable across restarts,
        # set by the vhost).
        log = vhost.broker.store
        settings = queue_settings(arguments)
        make: Callable[[], QueueStore]
        if durable and log is not None:
            make = partial(PagedStore, self, log)
        else:
            make = partial(MemoryStore, vhost.broker.account)
        levels = levels_for(settings.max_priority, settings.queue_type)
        # A priority queue: one store of that kind per level (queue_store/priority.py).
        self.store: QueueStore = make() if levels is None else PriorityStore(make, *levels)
        self.store_id = 0
        # The definitions version that made it durable: its messages' confirms also
        # wait for that version to be on disk (store.log, MessageLog.add).
        self.defs_version = 0
        self.unacked_count = 0
        self.unacked_bytes = 0
        self.consumers: deque[Consumer] = deque()
        # Consumer priorities or single active consumer (consumer_order.py); None while
        # plain round-robin over ``consumers`` will do.
        self._picker: Picker | None = None
        self.had_consumers = False
        self.exclusive_consumer: Consumer | None = None
        self.deleted = False
        self._ttl_handle: Any = None
        self._expiry_handle: Any = None
        # Statistics (management API, metrics).
        self.published = 0
        self.delivered = 0
        self.acked = 0
        # The policy and operator policy that apply, and their merged definition
        # (policies.py sets them; None / {} while none matches).
        self.policy: Any = None
        self.operator_policy: Any = None
        self.effective_policy: dict[str, Any] = {}
        self.apply_settings(settings)

    def apply_settings(self, settings: QueueSettings) -> None:
        """Run with ``settings`` (at declaration, and again when a policy changes)."""
        self.settings = settings
        self.max_length = settings.max_length
        self.max_length_bytes = settings.max_length_bytes
        self.overflow = settings.overflow
        self.message_ttl = settings.message_ttl
        self.expires = settings.expires
        self.dlx = settings.dlx
        self.dlrk = settings.dlrk
        self.queue_type = settings.queue_type
        # Returns counted, redeliveries annotated, delivery limit (redelivery.py).
        self.counts_returns = counts_returns(settings)
        # Delivery acknowledgement timeout in ms (server/ack_timeout.py): the queue's
        # (argument or policy) or else the broker's; None: none.
        self.ack_timeout = settings.consumer_timeout
        if self.ack_timeout is None:
            self.ack_timeout = getattr(self.vhost.broker, "consumer_timeout", None)

    # -- counts --------------------------------------------------------------
    @property
    def message_count(self) -> int:
        """Ready messages (in memory or paged out), as RabbitMQ's messages_ready."""
        return len(self.store)

    @property
    def ready_bytes(self) -> int:
        """Body bytes of every ready message, paged out or not."""
        return self.store.bytes

    @property
    def paged(self) -> int:
        """Ready messages whose body is only on disk."""
        return self.store.paged

    @property
    def paged_bytes(self) -> int:
        return self.store.paged_bytes

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    @property
    def single_active_consumer(self) -> Consumer | None:
        """The single active consumer (x-single-active-consumer), or None."""
        picker = self._picker
        return picker.active if isinstance(picker, SingleActive) else None

    def consumer_is_active(self, consumer: Consumer) -> bool:
        """Whether ``consumer`` may receive messages (false only for a consumer
        waiting behind a single active one)."""
        picker = self._picker
        return picker is None or picker.is_active(consumer)

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} ready={self.message_count} unacked={self.unacked_count}>"

    def is_behind(self) -> bool:
        """Ready messages that a consumer could take right now (publisher flow control)."""
        if self.deleted or not len(self.store):
            return False
        if self._picker is not None:
            return self._picker.can_take()
        return any(c.can_take() for c in self.consumers)

    def is_congested(self) -> bool:
        """Consumers are not keeping up: more ready messages than the in-memory window
        while someone consumes (publisher fair share, see FlowControl.after_read in server/flow.py).
        A queue nobody consumes from is just a backlog, not congestion."""
        return bool(self.consumers) and len(self.store) > CONGESTED

    def describe(self) -> str:
        return f"queue '{self.name}' in vhost '{self.vhost.name}'"

    # -- publishing ---------------------------------------------------------
    def would_overflow(self, size: int) -> bool:
        """True if a reject-publish queue is full (checked before enqueueing)."""
        if self.overflow == DROP_HEAD:
            return False
        if self.max_length is not None and len(self.store) >= self.max_length:
            return True
        if self.max_length_bytes is not None and self.store.bytes + size > self.max_length_bytes:
            return True
        return False

    def apply_ttl(self, msg: Message) -> None:
        """The queue's ``message-ttl`` starts now: the earlier of it and the message's own
        deadline.  Before the store logs the message, as its record keeps the expiry
        (a delayed message's copy is logged before it is enqueued: delayed_store.py)."""
        if self.message_ttl is not None:
            deadline = time.monotonic() + self.message_ttl
            if msg.expires_at is None or deadline < msg.expires_at:
                msg.expires_at = deadline

    def enqueue(self, msg: Message) -> None:
        msg.queue = self
        if self.message_ttl is not None:
            self.apply_ttl(msg)
        in_memory = self.store.push(msg)
        self.published += 1
        if self.max_length is not None or self.max_length_bytes is not None:
            self._enforce_limits()
        if not in_memory:
            return  # behind a paged backlog: dispatch and TTL get to it when it is read
        if msg.expires_at is not None:
            self._arm_ttl()
        if self.consumers:
            self.vhost.broker.pump.queue_dirty(self)

    def restore(self, entries: list[int], size: int, delivered: set[int],
                levels: Sequence[int] | None = None,
                level_bytes: dict[int, int] | None = None) -> None:
        """Recovered messages (log entries, in order) become this queue's ready messages;
        a priority queue's come with their levels (see ``PriorityStore.restore``)."""
        if isinstance(self.store, PriorityStore):
            self.store.restore(entries, size, delivered, levels, level_bytes)
        else:
            self.store.restore(entries, size, delivered)
        if self.consumers:
            self.vhost.broker.pump.queue_dirty(self)

    def _enforce_limits(self) -> None:
        store = self.store
        dropped = False
        while (self.max_length is not None and len(store) > self.max_length) or (
            self.max_length_bytes is not None and store.bytes > self.max_length_bytes
        ):
            msg = store.shift()
            if msg is None:
                break
            self._discard(msg, "maxlen")
            dropped = True
        if dropped:
            self._arm_ttl()  # a new head, maybe just read back from disk

    # -- consuming ---------------------------------------------------------
    def add_consumer(self, consumer: Consumer) -> None:
        picker = self._picker
        if picker is None:
            if self.settings.single_active:
                picker = self._picker = SingleActive(self.queue_type == "quorum")
            elif self.consumers and consumer.priority != self.consumers[0].priority:
                picker = self._picker = PriorityLine(self.consumers)
        if picker is not None:
            picker.add(consumer)
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
        picker = self._picker
        if picker is not None:
            if picker.remove(consumer):
                self.vhost.broker.pump.queue_dirty(self)  # a new single active consumer
            elif picker.uniform():
                self.consumers = picker.order()  # back to plain round-robin
                self._picker = None
        if not self.consumers:
            if self.auto_delete and self.had_consumers and not self.deleted:
                self.vhost.delete_queue(self, reason="auto_delete")
                return
            self.touch()

    def dispatch(self) -> None:
        """Hand ready messages to consumers that can take them, round-robin (or as
        consumer priorities / single active consumer say: ``consumer_order.py``)."""
        consumers = self.consumers
        if not consumers or self.deleted:
            return
        picker = self._picker
        store = self.store
        now = time.monotonic()
        budget = DISPATCH_BATCH
        # No emptiness check per message (a Python call for a paged store): the
        # consumer is chosen first, and the line is put back as it was if there
        # turns out to be nothing for it.
        while True:
            if not budget:
                # Come back next loop turn, after this batch has been written.
                loop = self.vhost.broker.loop
                loop.call_soon(self.vhost.broker.pump.queue_dirty, self)
                return
            budget -= 1
            if picker is None:
                turned = 0
                for _ in range(len(consumers)):
                    consumer = consumers[0]
                    consumers.rotate(-1)
                    turned += 1
                    if consumer.can_take():
                        break
                else:
                    return  # nobody can take a message now; an ack or resume re-dirties us
            else:
                picked = picker.pick()
                if picked is None:
                    return
                consumer = picked
            msg = self._take(now, block=False)
            if msg is None:
                if picker is None:
                    consumers.rotate(turned)
                else:
                    picker.unpick()
                break
            self.delivered += 1
            consumer.delivered += 1
            if consumer.no_ack:
                store.settle(msg)
            else:
                msg.consumer = consumer
                consumer.unacked += 1
                self.unacked_count += 1
                self.unacked_bytes += len(msg.body)
                if self.counts_returns and msg.msg_id is not None:
                    held(self, msg)
            consumer.channel.deliver(consumer, msg)
        self._arm_ttl()

    def check_get(self) -> None:
        """basic.get is refused on a single-active-consumer quorum queue
        (rabbit_quorum_queue:dequeue, 3.10 and 4.x alike)."""
        if self.settings.single_active and self.queue_type == "quorum":
            raise ChannelError(rc.RESOURCE_LOCKED, f"cannot obtain access to locked "
                               f"{self.describe()}. basic.get operations are not supported "
                               "by quorum queues with single active consumer")

    def get(self, no_ack: bool) -> Message | None:
        """basic.get: the head message, or None when the queue is empty."""
        self.check_get()
        self.touch()
        msg = self._take(time.monotonic())
        if msg is not None:
            self.delivered += 1
            if no_ack:
                self.store.settle(msg)
            else:
                msg.consumer = None
                self.unacked_count += 1
                self.unacked_bytes += len(msg.body)
                if self.counts_returns and msg.msg_id is not None:
                    held(self, msg)
        self._arm_ttl()
        return msg

    def _take(self, now: float, block: bool = True) -> Message | None:
        """The next live ready message, marked delivered (consumer delivery and
        basic.get alike); expired ones met on the way are dropped or dead-lettered.
        ``block``: see ``QueueStore.shift``."""
        store = self.store
        while True:
            msg = store.shift(block)
            if msg is None:
                return None
            if msg.expires_at is not None and msg.expires_at <= now:
                self._discard(msg, "expired")
                continue
            if msg.returns is not None and over_limit(self, msg):
                continue  # dead-lettered or dropped (a crash counted its lost holder)
            if msg.msg_id is not None and not msg.redelivered:
                store.mark_delivered(msg)
            return msg

    def wake(self) -> None:
        """The store has messages in memory again (read back off the loop), or may
        retry a read that failed: look at the head's TTL and dispatch."""
        if self.deleted:
            return
        self._arm_ttl()
        if self.consumers:
            self.vhost.broker.pump.queue_dirty(self)

    # -- settlement ----------------------------------------------------------
    def ack(self, msg: Message) -> None:
        """The holder acknowledged ``msg`` (or it was delivered with no-ack)."""
        self._release(msg)
        self.acked += 1
        self.store.settle(msg)

    def requeue(self, msgs: list[Message], failed: bool = False) -> None:
        """Put unacked messages back at their original positions.  ``failed``: the
        return counts as a failed delivery (basic.reject, the holder went away), for
        the delivery limit of a queue that counts returns."""
        for msg in msgs:
            self._release(msg)
        if self.deleted:
            for msg in msgs:
                self.store.settle(msg)
            return
        if self.counts_returns:
            msgs = returned(self, msgs, failed)
        self.store.requeue(msgs)
        self._arm_ttl()
        if self.consumers:
            self.vhost.broker.pump.queue_dirty(self)

    def reject(self, msg: Message) -> None:
        """nack/reject without requeue: dead-letter or drop."""
        self._release(msg)
        if self.deleted:
            self.store.settle(msg)
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

    def discard(self, msg: Message, reason: str) -> None:
        """A taken message leaves for good (over the delivery limit): dead-lettered or dropped."""
        self._discard(msg, reason)

    def _discard(self, msg: Message, reason: str) -> None:
        """Drop a message (expired, over the limit, rejected), dead-lettering it if configured."""
        self.store.settle(msg)
        if self.dlx is not None:
            self.vhost.dead_letter(self, msg, reason)

    # -- purge / delete --------------------------------------------------------
    def purge(self) -> int:
        return self.store.purge()

    def on_deleted(self) -> None:
        """Called by the vhost once the queue is unlinked."""
        self.deleted = True
        self.store.purge()
        self.store.close()
        self._cancel_expiry()
        if self._ttl_handle is not None:
            self._ttl_handle.cancel()
            self._ttl_handle = None

    # -- timers ----------------------------------------------------------------
    def _arm_ttl(self) -> None:
        head = self.store.head()
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
        store = self.store
        # Like RabbitMQ's classic queues, only expired messages at the head are dropped.
        while (head := store.head()) is not None and head.expires_at is not None \
                and head.expires_at <= now:
            store.shift()
            self._discard(head, "expired")
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

