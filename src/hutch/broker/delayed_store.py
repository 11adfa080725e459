"""The messages an ``x-delayed-message`` exchange holds until they are due.

One ``DelayStore`` per delayed exchange: a heap of due times and one asyncio timer
armed for the soonest.  Due times are wall-clock milliseconds (as the plugin's
erlang:system_time), so that they keep their meaning across a restart; the timer
runs on the loop's monotonic clock and, when it goes off, the wall clock decides:
a message is never fired before its due time (a timer that woke early, or a clock
that stepped back, just re-arms).

Each heap entry is one int, ``(due_ms << 40) | seq``: no tuple per message, and
equal due times fire in publish order.  ``seq`` keys the message itself in
``_msgs``.  Messages held here count towards the node's memory alarm
(``Node.account``), as queued bodies do.

Firing is bounded per loop turn (``FIRE_BATCH``): a million messages due at once
do not stall the loop; the rest follow on the next turns.

Durability.  A durable delayed exchange on a node with a message log gets a store
id (like a durable queue's; ``hutch.exchange_ids`` in the definitions, new for each
incarnation), and a persistent message it delays is written to the log as a PUBLISH
under that id with its due time in ``expires_ms``: the publisher's confirm waits
for that record's fsync.  Firing it goes through ``MessageLog.begin_fire`` /
``end_fire`` (store/fired.py), so its copies in durable queues and the end of the
delayed message are one all-or-nothing group even across a power cut.  At start the
node hands back the exchange's live entries (``restore``); their records are read
back for the due times.  The clean-stop snapshot lists them like a queue's entries.
Transient messages, and any message of a non-durable exchange, stay in memory.
"""

from __future__ import annotations

import heapq
import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .exchanges.delayed import DelayedExchange

SEQ_BITS = 40
SEQ_MASK = (1 << SEQ_BITS) - 1
FIRE_BATCH = 2000  # messages fired per loop turn at most


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Delayed:
    """One waiting message (the routing key and exchange it was published with)."""

    __slots__ = ("body", "exchange", "header", "msg_id", "persistent", "routing_key", "store_pos")

    expires_at = None  # read by MessageLog.add (the due time is passed on its own)

    def __init__(self, exchange: str, routing_key: str, header: bytes, body: bytes,
                 persistent: bool) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.header = header
        self.body = body
        self.persistent = persistent
        self.msg_id: int | None = None  # its PUBLISH record's seq, if logged
        self.store_pos: int | None = None  # that record's offset, once written


class DelayStore:
    def __init__(self, exchange: DelayedExchange) -> None:
        self.exchange = exchange
        vhost = exchange.vhost
        self.vhost = vhost
        self.node = vhost.broker
        self.loop = self.node.loop
        self._heap: list[int] = []
        self._msgs: dict[int, Delayed] = {}
        self._seq = 0
        self._timer: Any = None  # asyncio.TimerHandle
        self._timer_due = 0  # the due time (ms) the timer is armed for
        self.fired = 0  # messages fired so far (for tests and stats)
        # The MessageStore's view of this store as a queue: its id in the log (None:
        # nothing is logged) and the definitions version that must be durable before
        # a confirm (the exchange's declaration).
        self.store_id: int | None = None
        self.defs_version = 0

    def attach(self, store_id: int | None, defs_version: int = 0) -> None:
        """Log persistent messages under ``store_id`` (a new random one if None)."""
        self.store_id = store_id or int.from_bytes(os.urandom(8), "big") >> 1
        self.defs_version = defs_version

    @property
    def count(self) -> int:
        """messages_delayed."""
        return len(self._msgs)

    def add(self, exchange: str, routing_key: str, header: bytes, body: bytes,
            persistent: bool, delay_ms: int) -> bool:
        """Hold a message for ``delay_ms``; True if it went to the log (the publisher's
        confirm waits for the disk)."""
        due = now_ms() + delay_ms
        msg = Delayed(exchange, routing_key, header, body, persistent)
        stored = False
        if persistent and self.store_id is not None and self.node.store is not None:
            self.node.store.add(self, msg, due)
            stored = True
        self._push(msg, due)
        return stored

    def _push(self, msg: Delayed, due: int) -> None:
        self._seq += 1
        seq = self._seq
        self._msgs[seq] = msg
        self.node.account(len(msg.body))
        heapq.heappush(self._heap, (due << SEQ_BITS) | seq)
        if self._timer is None or due < self._timer_due:
            self._arm(due)

    def restore(self, entries: list[int]) -> int:
        """At start: the exchange's messages the log holds (compact entries); their
        records are read back for the due time (and, for now, the body).  Returns
        how many came back."""
        log = self.node.store
        back = 0
        for e, rec in zip(entries, log.read_entries(entries), strict=True):
            if rec is None:
                continue
            msg = Delayed(rec.exchange, rec.routing_key, rec.header, rec.body, True)
            msg.msg_id = rec.seq
            msg.store_pos = e & 0xFFFFFFFF
            self._push(msg, rec.expires_ms)
            back += 1
        return back

    def snapshot(self) -> tuple[list[int], int] | None:
        """The logged messages as compact entries (for the clean-stop snapshot); None
        if one is not written yet."""
        entries: list[int] = []
        size = 0
        for msg in self._msgs.values():
            if msg.msg_id is None:
                continue
            if msg.store_pos is None:
                return None
            entries.append((msg.msg_id << 32) | msg.store_pos)
            size += len(msg.body)
        entries.sort()
        return entries, size

    def _arm(self, due: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        wait = max(0, due - now_ms()) / 1000.0
        self._timer = self.loop.call_at(self.loop.time() + wait, self._fire)

    def _fire(self) -> None:
        self._timer = None
        heap = self._heap
        now = now_ms()
        fired = 0
        while heap and heap[0] >> SEQ_BITS <= now and fired < FIRE_BATCH:
            seq = heapq.heappop(heap) & SEQ_MASK
            msg = self._msgs.pop(seq, None)
            if msg is None:
                continue
            fired += 1
            self.node.account(-len(msg.body))
            if msg.msg_id is None:
                self.vhost.fire_delayed(self.exchange, msg.exchange, msg.routing_key,
                                        msg.header, msg.body, msg.persistent)
                continue
            log = self.node.store
            log.begin_fire(self.store_id, msg.msg_id)
            try:
                self.vhost.fire_delayed(self.exchange, msg.exchange, msg.routing_key,
                                        msg.header, msg.body, msg.persistent)
            finally:
                log.end_fire()
                log.remove(self, msg)
        self.fired += fired
        if heap:
            if heap[0] >> SEQ_BITS <= now:  # more due than one turn's share
                self._timer_due = now
                self._timer = self.loop.call_soon(self._fire)
            else:
                self._arm(heap[0] >> SEQ_BITS)

    def close(self) -> None:
        """The exchange is deleted: its waiting messages go with it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.node.account(-sum(len(m.body) for m in self._msgs.values()))
        log = self.node.store
        for msg in self._msgs.values():
            if msg.msg_id is not None and log is not None:
                log.remove(self, msg)
        self._msgs.clear()
        self._heap.clear()
