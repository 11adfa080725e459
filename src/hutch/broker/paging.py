"""The paging window of a durable queue: which ready messages stay in memory.

A durable queue keeps at most ``WINDOW_BYTES`` of ready message bodies in memory
(and at most ``WINDOW_MAX`` messages).  Beyond that, new messages go to ``spill``
until the store has written them, then to ``backlog`` as one int each (message id
and file offset, see ``store.log.entry``); ``_refill`` reads them back in order as
the head drains.  Spilled messages are paged out as soon as the store confirms
their batch written (``_written``), not only when the next publish comes along.
Transient messages cannot be paged and stay objects in the backlog.  So the order
is always: ready, then backlog, then spill.

Body bytes are tracked by where they are (``Queue.ready_bytes`` counts them all):
``paged_bytes`` only on disk, ``held_bytes`` in memory outside ``ready``, the rest
in ``ready``.  Every body in memory is counted by the broker's memory alarm
(``Broker.account``): paging one out takes it off, reading it back puts it on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .message import Message

log = logging.getLogger("hutch.queue")
READ_RETRY = 1.0

if TYPE_CHECKING:
    from .vhost import Vhost

# Ready messages a durable queue keeps in memory before paging new ones out: up to
# WINDOW_MAX while they hold less than WINDOW_BYTES of bodies (so 2,048 messages of
# 2 KiB, 4 of 1 MiB, and always at least one).  The count goes that high for the
# common case of a consumer running just behind the producer: paging out what is
# about to be delivered would cost a write-read-decode round trip per message
# (measured: ~15% of the broker's CPU in the work-queue benchmark with 2,048).  The
# byte bound is what keeps large messages on disk: by count alone, 2,048 messages of
# 1 MiB stayed in memory.  Once paging has started, the head is refilled from disk
# up to WINDOW messages or WINDOW_BYTES, whichever comes first, whenever it falls
# below half of both.
WINDOW = 2048
WINDOW_MAX = 16384
WINDOW_BYTES = 4 * 1024 * 1024
REFILL_BELOW = WINDOW // 2
REFILL_BELOW_BYTES = WINDOW_BYTES // 2


class PagingMixin:
    """The paging half of ``Queue`` (which provides the attributes declared here)."""

    vhost: Vhost
    store: Any
    deleted: bool
    ready: deque[Message]
    backlog: deque[Any]  # ints (paged out) or transient Messages
    spill: deque[Message]
    paged: int
    ready_bytes: int
    paged_bytes: int
    held_bytes: int
    consumers: deque[Any]
    _next_seq: int
    _page_out_waiting: bool
    name: str
    _read_retry: asyncio.TimerHandle | None = None  # a failed read is tried again then

    def _arm_ttl(self) -> None:
        raise NotImplementedError

    def _read_failed(self, exc: OSError) -> None:
        """Paged messages could not be read back (EIO): they stay paged, in order, and
        the queue tries again in a second.  Consumers wait meanwhile; nothing is lost."""
        if self._read_retry is not None:
            return
        log.error("queue '%s': cannot read paged-out messages back (%s); retrying in %.0f s",
                  self.name, exc, READ_RETRY)
        broker = self.vhost.broker
        self._read_retry = broker.loop.call_later(READ_RETRY, self._retry_read)

    def _retry_read(self) -> None:
        self._read_retry = None
        if not self.deleted:
            self.vhost.broker.pump.queue_dirty(self)

    def _room_in_memory(self) -> bool:
        """Whether a new message (already counted in ready_bytes) may join ``ready``;
        only asked while nothing is paged out or held, so ready_bytes is exactly what
        ``ready`` will hold.  The first one always may."""
        return (self.ready_bytes <= WINDOW_BYTES or not self.ready) and len(self.ready) < WINDOW_MAX

    def _window_bytes(self) -> int:
        """Body bytes in the ``ready`` list (the in-memory head of the queue)."""
        return self.ready_bytes - self.paged_bytes - self.held_bytes

    def _wants_refill(self) -> bool:
        """The window is below half of it (callers check that something waits behind)."""
        return len(self.ready) < REFILL_BELOW and self._window_bytes() < REFILL_BELOW_BYTES

    def _written(self, ok: bool) -> None:
        """The store wrote the batch holding (at least) the oldest spilled message."""
        self._page_out_waiting = False
        if self.deleted or not self.spill:
            return
        before = len(self.spill)
        self._page_out()
        # Newer messages are in a later batch: wait for it too.  Not after a failed
        # write or without progress, which would only spin; the next publish retries.
        if ok and self.spill and len(self.spill) < before:
            self._page_out_waiting = True
            self.store.when_durable(self._written)

    def restore_entries(self, entries: list[int], size: int) -> None:
        """Recovered messages (store entries, in order) become this queue's backlog."""
        self.backlog.extend(entries)
        self.paged += len(entries)
        self.ready_bytes += size
        self.paged_bytes += size
        if self.consumers:
            self.vhost.broker.pump.queue_dirty(self)

    def store_snapshot(self, delivered: set[int]) -> tuple[list[int], int] | None:
        """This queue's persistent messages as store entries in queue order, with their
        body bytes, for the clean-shutdown snapshot; ids of those already delivered
        once go into ``delivered``.  None if one of them is not written yet."""
        entries: list[int] = []
        transient = 0
        recovered_delivered = self.store.recovered_delivered
        for part in (self.ready, self.backlog, self.spill):
            for item in part:
                if isinstance(item, int):
                    entries.append(item)
                    if recovered_delivered and (item >> 32) in recovered_delivered:
                        delivered.add(item >> 32)
                    continue
                if item.store_ref is None:
                    transient += len(item.body)  # does not survive a restart
                    continue
                if item.store_pos is None:
                    return None
                entries.append((item.store_ref << 32) | item.store_pos)
                if item.redelivered:
                    delivered.add(item.store_ref)
        # ready_bytes counts every ready body, paged out or not.
        return entries, self.ready_bytes - transient

    def _page_out(self) -> None:
        """Move written messages from spill to the backlog as ints, freeing their bytes."""
        spill = self.spill
        backlog = self.backlog
        freed = 0
        while spill:
            msg = spill[0]
            if msg.store_ref is None:
                backlog.append(spill.popleft())  # transient: stays an object
            elif msg.store_pos is not None:
                spill.popleft()
                backlog.append((msg.store_ref << 32) | msg.store_pos)
                self.paged += 1
                freed += len(msg.body)
            else:
                break  # not written yet; later messages wait behind it
        if freed:
            self.held_bytes -= freed
            self.paged_bytes += freed
            self.vhost.broker.account(-freed)

    def _refill(self) -> None:
        """Top the in-memory ready list back up from the backlog, then the spill, to
        WINDOW messages or WINDOW_BYTES, whichever comes first (at least one)."""
        self._page_out()
        want = WINDOW - len(self.ready)
        room = WINDOW_BYTES - self._window_bytes()
        backlog, spill, ready = self.backlog, self.spill, self.ready
        moved: list[Message] = []
        held = 0  # bytes moved from held (spill, transient) into the window
        while want > 0 and room > 0 and backlog:
            if isinstance(backlog[0], int):
                # Sizes are unknown until read: take as many as the average paged
                # message says fit, then look again.
                fit = room * self.paged // self.paged_bytes if self.paged_bytes > 0 else want
                n = min(want, max(1, fit))
                run: list[int] = []
                while n > 0 and backlog and isinstance(backlog[0], int):
                    run.append(backlog.popleft())
                    n -= 1
                try:
                    loaded, size = self._load(run)
                except OSError as exc:
                    backlog.extendleft(reversed(run))  # kept, in order: tried again later
                    self._read_failed(exc)
                    break
                self.paged -= len(run)
                want -= len(run)
                moved.extend(loaded)
                self.paged_bytes -= size
                room -= size
            else:
                msg = backlog.popleft()  # transient
                moved.append(msg)
                held += len(msg.body)
                room -= len(msg.body)
                want -= 1
        while want > 0 and room > 0 and spill and not backlog:
            msg = spill.popleft()
            moved.append(msg)
            held += len(msg.body)
            room -= len(msg.body)
            want -= 1
        self.held_bytes -= held
        if not self.paged:
            self.paged_bytes = 0  # unreadable entries (lost) never had their size taken off
        for msg in moved:
            msg.seq = self._next_seq
            self._next_seq += 1
            ready.append(msg)
        if ready and ready[0].expires_at is not None:
            self._arm_ttl()

    def _load(self, run: list[int]) -> tuple[list[Message], int]:
        """Read paged-out messages back from the store; with their body bytes."""
        store = self.store
        delivered = store.recovered_delivered
        now_wall, now_mono = time.time(), time.monotonic()
        out = []
        size = 0
        for e, pub in zip(run, store.read_entries(run), strict=True):
            if pub is None:
                continue  # unreadable (logged by the store): counted as lost
            expires_at = None
            if pub.expires_ms:
                expires_at = now_mono + (pub.expires_ms / 1000.0 - now_wall)
            msg = Message(pub.exchange, pub.routing_key, pub.header, pub.body, True, expires_at)
            msg.queue = self
            msg.store_ref = pub.seq
            msg.store_pos = e & 0xFFFFFFFF
            if delivered and pub.seq in delivered:
                delivered.discard(pub.seq)
                msg.redelivered = True
            size += len(pub.body)
            out.append(msg)
        self.vhost.broker.account(size)
        return out, size

