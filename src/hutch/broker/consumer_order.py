"""Which consumer a queue hands its next message to, when plain round-robin will not do.

A queue whose consumers all have the same priority and that is not a single-active-
consumer queue dispatches round-robin inline (``Queue.dispatch`` rotates
``Queue.consumers``) and never touches this module.  Otherwise the queue keeps a
*picker* here and asks it for each message:

``PriorityLine`` — consumer priorities (the ``x-priority`` argument of basic.consume),
    as RabbitMQ 4.x's classic queues (``rabbit_queue_consumers.erl``: one priority
    queue of consumers, ``out_p`` takes the highest) and quorum queues (``rabbit_fifo``'s
    service queue) do it: a message goes to the highest-priority consumer that can take
    one now (prefetch room, channel flow on, socket not backed up); lower priorities
    only get messages while every higher one is blocked; equal priorities share
    round-robin.  Priorities are any integers, negative ones included; absent is 0.

``SingleActive`` — ``x-single-active-consumer``: only one consumer (the *active* one)
    gets messages.  The first consumer to register becomes active; when it goes away
    (basic.cancel, its channel closing, its connection dying) the waiting consumer with
    the highest priority, earliest registered among equals, takes over (classic:
    ``rabbit_amqqueue_process:new_single_active_consumer_after_*`` with
    ``rabbit_queue_consumers:get_consumer``; quorum: ``rabbit_fifo:activate_next_consumer``).
    Quorum queues (RabbitMQ 4.0+) also hand over to a *higher-priority* consumer that
    registers later: the active consumer gets nothing more (``quiescing``) and once all
    its unacknowledged messages are settled it goes back to waiting and the higher one
    becomes active.  Classic queues never hand over while the active consumer stays.

What happens to the old active consumer's unacknowledged messages is the channel's
business, not this module's: after basic.cancel they stay with the channel (they can
still be acked; RabbitMQ does the same for both queue types); a channel that closes or
a connection that dies requeues them at their original positions before the queue next
dispatches (``Channel.release`` runs before the pump), so the new active consumer gets
them first.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .consumer import Consumer


def consumer_priority(args: dict[str, Any]) -> int:
    """A validated consumer's priority (0 when it has none)."""
    value = args.get("x-priority", 0)
    return value if isinstance(value, int) else 0


class PriorityLine:
    """Consumers grouped by priority, highest first; a deque per priority for round-robin."""

    single = False

    def __init__(self, consumers: Iterable[Consumer]) -> None:
        # Parallel lists, sorted by descending priority (keys hold -priority for bisect).
        self._keys: list[int] = []
        self._lines: list[deque[Consumer]] = []
        # The line the last pick() rotated and by how much (for unpick()).
        self._last: tuple[deque[Consumer], int] | None = None
        for c in consumers:
            self.add(c)

    def add(self, consumer: Consumer) -> None:
        key = -consumer.priority
        i = bisect_left(self._keys, key)
        if i == len(self._keys) or self._keys[i] != key:
            self._keys.insert(i, key)
            self._lines.insert(i, deque())
        self._lines[i].append(consumer)

    def remove(self, consumer: Consumer) -> bool:
        """Forget ``consumer``.  Returns whether the queue must dispatch again because
        of it: never, the consumers left keep their places."""
        key = -consumer.priority
        i = bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            line = self._lines[i]
            try:
                line.remove(consumer)
            except ValueError:
                return False
            if not line:
                del self._keys[i]
                del self._lines[i]
        self._last = None
        return False

    def uniform(self) -> bool:
        """All consumers share one priority: plain round-robin can take over again."""
        return len(self._lines) <= 1

    def order(self) -> deque[Consumer]:
        """Every consumer, in the order they would be served (for going back to plain)."""
        out: deque[Consumer] = deque()
        for line in self._lines:
            out.extend(line)
        return out

    def pick(self) -> Consumer | None:
        """The next consumer to serve, rotated to the back of its line.

        A line whose consumers are all blocked is turned all the way round, which leaves
        it as it was; only the line the chosen consumer is in moves."""
        for line in self._lines:
            turned = 0
            for _ in range(len(line)):
                consumer = line[0]
                line.rotate(-1)
                turned += 1
                if consumer.can_take():
                    self._last = (line, turned)
                    return consumer
        return None

    def unpick(self) -> None:
        """There was no message for the consumer pick() chose: put its line back."""
        if self._last is not None:
            line, turned = self._last
            line.rotate(turned)
            self._last = None

    def can_take(self) -> bool:
        return any(c.can_take() for line in self._lines for c in line)

    def is_active(self, consumer: Consumer) -> bool:
        return True


class SingleActive:
    """x-single-active-consumer: the active consumer and the ones waiting behind it."""

    single = True

    def __init__(self, quorum: bool) -> None:
        self.quorum = quorum
        self.active: Consumer | None = None
        # Registration order: a consumer's sequence number breaks priority ties.
        self._seq: dict[Consumer, int] = {}
        self._next_seq = 0
        self.waiting: list[Consumer] = []
        # Quorum queues: a higher-priority consumer waits for the active one to settle
        # what it holds; meanwhile the active one gets nothing.
        self.quiescing = False

    def add(self, consumer: Consumer) -> None:
        self._seq[consumer] = self._next_seq
        self._next_seq += 1
        if self.active is None:
            self.active = consumer
            return
        self.waiting.append(consumer)
        if self.quorum and consumer.priority > self.active.priority:
            self.quiescing = True

    def remove(self, consumer: Consumer) -> bool:
        """Forget ``consumer``; True when another consumer became active (the queue
        should dispatch to it)."""
        self._seq.pop(consumer, None)
        if consumer is self.active:
            self.quiescing = False
            self.active = self._promote()
            return self.active is not None
        try:
            self.waiting.remove(consumer)
        except ValueError:
            pass
        # A quiescing consumer stays so until it has settled what it holds, even if the
        # higher-priority consumer it made way for goes away meanwhile (rabbit_fifo:
        # cancel_consumer leaves the active one's status alone); then the best waiting
        # consumer, maybe itself again, becomes active.
        return False

    def _promote(self) -> Consumer | None:
        """Take the highest-priority waiting consumer (earliest registered among equals)
        off the waiting list."""
        if not self.waiting:
            return None
        seq = self._seq
        best = min(self.waiting, key=lambda c: (-c.priority, seq.get(c, 0)))
        self.waiting.remove(best)
        return best

    def pick(self) -> Consumer | None:
        active = self.active
        if active is None:
            return None
        if self.quiescing:
            if active.unacked:
                return None
            # Settled: hand over (rabbit_fifo:update_or_remove_con, then
            # activate_next_consumer).  The old one waits at its registration place.
            self.quiescing = False
            self.waiting.append(active)
            self.active = active = self._promote()
            if active is None:
                return None
        return active if active.can_take() else None

    def unpick(self) -> None:
        pass

    def can_take(self) -> bool:
        active = self.active
        if active is None:
            return False
        if self.quiescing:
            # Settled but not yet handed over: the next dispatch hands over.
            return not active.unacked and any(c.can_take() for c in self.waiting)
        return active.can_take()

    def is_active(self, consumer: Consumer) -> bool:
        return consumer is self.active

    def order(self) -> deque[Consumer]:
        return deque()

    def uniform(self) -> bool:
        return False


Picker = PriorityLine | SingleActive
