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
"""

from __future__ import annotations

import heapq
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

    __slots__ = ("body", "exchange", "header", "persistent", "routing_key")

    def __init__(self, exchange: str, routing_key: str, header: bytes, body: bytes,
                 persistent: bool) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.header = header
        self.body = body
        self.persistent = persistent


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

    @property
    def count(self) -> int:
        """messages_delayed."""
        return len(self._msgs)

    def add(self, exchange: str, routing_key: str, header: bytes, body: bytes,
            persistent: bool, delay_ms: int) -> None:
        due = now_ms() + delay_ms
        self._seq += 1
        seq = self._seq
        self._msgs[seq] = Delayed(exchange, routing_key, header, body, persistent)
        self.node.account(len(body))
        heapq.heappush(self._heap, (due << SEQ_BITS) | seq)
        if self._timer is None or due < self._timer_due:
            self._arm(due)

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
            self.vhost.fire_delayed(self.exchange, msg.exchange, msg.routing_key, msg.header,
                                    msg.body, msg.persistent)
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
        self._msgs.clear()
        self._heap.clear()
