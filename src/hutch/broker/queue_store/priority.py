"""The message store of a priority queue: one store per priority level.

Classic queues with ``x-max-priority`` N (RabbitMQ 4.x ``rabbit_priority_queue``):
levels 0..N, where 0 acts as 1 (``max(1, min(N, 255))``); a message's ``priority``
property above N counts as N, an absent one as 0.  Quorum queues (RabbitMQ 4.3's
``rabbit_fifo`` with ``rabbit_fifo_pq``): always 32 levels 0..31, no argument
needed; above 31 counts as 31, an absent priority as 4.  Both are strict: the
highest non-empty level is served first, FIFO within a level.

Each level is a whole ``QueueStore`` of its own -- a ``MemoryStore`` for a
transient queue, a ``PagedStore`` for a durable one -- so every level keeps its own
in-memory window and pages out independently: a backlog of a million messages over
ten levels holds at most ten windows in memory.  Levels are created on first use
(a queue declared with 255 levels that only ever sees three pays for three).

What follows from composing whole stores, as in RabbitMQ where each level is a
backing queue of its own:

* Everything that takes "the head" takes the head of the highest non-empty level:
  delivery, ``basic.get``, and max-length's drop-head (RabbitMQ's ``drop/2`` runs
  ``find2`` from the highest priority down), so drop-head drops the *highest*
  priority message first.
* TTL expiry looks at the same head, so it walks down the levels while their heads
  expire and stops at the first level whose head is live, exactly as RabbitMQ's
  ``dropwhile/2`` (``find2`` again) does for classic priority queues.
* A requeued message goes back to its original position within its own level
  (positions are per level store).
* If the highest non-empty level's head is on disk, a non-blocking take returns
  None and waits for the read instead of serving a lower level: strict order.

Settling (ack, drop) and marking delivered do not depend on the level (they count
bytes for the memory alarm and write ACK/DELIVER records by message id), so they go
to one level store, whichever.

A message's level is computed from its raw content header when it enters or
re-enters the store; ``Message`` carries no extra slot for it, so queues without
priorities keep their per-message footprint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..message import Message
    from . import QueueStore

log = logging.getLogger("hutch.queue")

# RabbitMQ's ?MAX_SUPPORTED_PRIORITY (classic) and rabbit_fifo's ?MAX_PRIORITY and
# ?DEFAULT_PRIORITY (quorum, 4.3).
CLASSIC_MAX = 255
QUORUM_MAX = 31
QUORUM_DEFAULT = 4

# Content-header property flags (AMQP 0-9-1 basic class, see protocol/properties.py).
_CONTENT_TYPE = 1 << 15
_CONTENT_ENCODING = 1 << 14
_HEADERS = 1 << 13
_DELIVERY_MODE = 1 << 12
_PRIORITY = 1 << 11

# (level, count, body bytes): a run of ``count`` entries of one level, as the
# shutdown snapshot lists them (store/snapshot.py).
Run = tuple[int, int, int]


def header_priority(header: bytes | memoryview) -> int | None:
    """The ``priority`` property of a content-header frame payload (class, weight,
    body size, then the properties), or None if it is absent (or unreadable)."""
    try:
        flags = (header[12] << 8) | header[13]
        if not flags & _PRIORITY:
            return None
        off = 14
        more = flags
        while more & 1:  # continuation flag words: no basic-class properties in them
            more = (header[off] << 8) | header[off + 1]
            off += 2
        if flags & _CONTENT_TYPE:
            off += 1 + header[off]
        if flags & _CONTENT_ENCODING:
            off += 1 + header[off]
        if flags & _HEADERS:
            off += 4 + int.from_bytes(header[off:off + 4], "big")
        if flags & _DELIVERY_MODE:
            off += 1
        return header[off]
    except IndexError:
        return None


def levels_for(max_priority: int | None, queue_type: str) -> tuple[int, int] | None:
    """(top level, level of a message without priority) for a queue, or None if it
    has no priorities."""
    if queue_type == "quorum":
        return QUORUM_MAX, QUORUM_DEFAULT
    if max_priority is None:
        return None
    return max(1, min(max_priority, CLASSIC_MAX)), 0


class PriorityStore:
    """A ``QueueStore`` over one ``QueueStore`` per level (see the module docstring)."""

    def __init__(self, make: Callable[[], QueueStore], top: int, default: int) -> None:
        self._make = make
        self.top = top  # the highest level
        self.default = default  # the level of a message without a priority
        self.stores: list[QueueStore | None] = [None] * (top + 1)
        # The levels that have a store, highest first: what take and head walk.
        self._order: list[QueueStore] = []
        self._levels: list[int] = []
        # Stores in _order before this index are empty: take and head start here
        # (lowered by whatever adds messages, raised as levels drain).
        self._first = 0
        self._index: dict[int, int] = {}  # level -> its index in _order
        self._base = self._store(default)  # settle and mark_delivered go here

    # -- levels -----------------------------------------------------------------
    def level_of_header(self, header: bytes | memoryview) -> int:
        p = header_priority(header)
        if p is None:
            return self.default
        return p if p <= self.top else self.top

    def level_of(self, msg: Message) -> int:
        return self.level_of_header(msg.header)

    def _store(self, level: int) -> QueueStore:
        """The store of ``level``, about to receive messages (so take and head look
        at it again)."""
        store = self.stores[level]
        if store is None:
            store = self.stores[level] = self._make()
            i = 0
            while i < len(self._levels) and self._levels[i] > level:
                i += 1
            self._levels.insert(i, level)
            self._order.insert(i, store)
            self._index = {lvl: j for j, lvl in enumerate(self._levels)}
            self._first = 0
        elif self._first:
            i = self._index[level]
            if i < self._first:
                self._first = i
        return store

    def _head_store(self) -> QueueStore | None:
        order = self._order
        i = self._first
        n = len(order)
        while i < n:
            store = order[i]
            if len(store):
                self._first = i
                return store
            i += 1
        self._first = n
        return None

    def lengths(self) -> dict[int, int]:
        """Ready messages per level, non-empty levels only (highest first)."""
        return {lvl: len(s) for lvl, s in zip(self._levels, self._order, strict=True) if len(s)}

    # -- the QueueStore interface -------------------------------------------------
    def __len__(self) -> int:
        return sum(map(len, self._order))

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self._order)

    @property
    def paged(self) -> int:
        return sum(s.paged for s in self._order)

    @property
    def paged_bytes(self) -> int:
        return sum(s.paged_bytes for s in self._order)

    def push(self, msg: Message) -> bool:
        return self._store(self.level_of(msg)).push(msg)

    def shift(self, block: bool = True) -> Message | None:
        store = self._head_store()
        return store.shift(block) if store is not None else None

    def head(self) -> Message | None:
        store = self._head_store()
        return store.head() if store is not None else None

    def requeue(self, msgs: list[Message]) -> None:
        by_level: dict[int, list[Message]] = {}
        for msg in msgs:
            by_level.setdefault(self.level_of(msg), []).append(msg)
        for level, part in by_level.items():
            self._store(level).requeue(part)

    def mark_delivered(self, msg: Message) -> None:
        self._base.mark_delivered(msg)

    def settle(self, msg: Message) -> None:
        self._base.settle(msg)

    def purge(self) -> int:
        return sum(s.purge() for s in self._order)

    def restore(self, entries: list[int], size: int, delivered: set[int],
                levels: Sequence[int] | None = None,
                level_bytes: dict[int, int] | None = None) -> None:
        """Recovered entries (in queue order) with each one's level (``levels``,
        parallel to ``entries``) and the body bytes per level."""
        if levels is None or level_bytes is None:
            # Only if recovery did not classify this queue's messages (it always
            # should): keep them, in order, at the default level.
            log.warning("priority queue: %d recovered messages without their priorities "
                        "go to level %d", len(entries), self.default)
            self._store(self.default).restore(entries, size, delivered)
            return
        per_level: dict[int, list[int]] = {}
        for e, lvl in zip(entries, levels, strict=True):
            part = per_level.get(lvl)
            if part is None:
                part = per_level[lvl] = []
            part.append(e)
        for lvl, part in per_level.items():
            level = min(lvl, self.top)
            self._store(level).restore(part, level_bytes.get(lvl, 0), delivered)

    def snapshot(self, delivered: set[int]) -> tuple[list[int], int] | None:
        """As ``QueueStore.snapshot``, highest level first; the runs of levels are left
        in ``snapshot_runs`` for the snapshot file."""
        entries: list[int] = []
        total = 0
        runs: list[Run] = []
        for lvl, store in zip(self._levels, self._order, strict=True):
            state = store.snapshot(delivered)
            if state is None:
                return None
            part, size = state
            if part:
                entries.extend(part)
                runs.append((lvl, len(part), size))
                total += size
        self.snapshot_runs = runs
        return entries, total

    snapshot_runs: list[Run] = []

    def close(self) -> None:
        for store in self._order:
            store.close()
