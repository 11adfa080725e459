"""The message store of a durable queue: an in-memory window over the message log.

A durable queue keeps at most ``WINDOW_BYTES`` of ready message bodies in memory
(and at most ``WINDOW_MAX`` messages).  Beyond that, new messages go to ``spill``
until the log has written them, then to ``backlog`` as one int each (an *entry*:
message id and file offset, see ``store.recovery.entry``); ``_refill`` reads them
back in order as the head drains.  Spilled messages are paged out as soon as the
log confirms their batch written (``_written``), not only when the next publish
comes along.  Transient messages cannot be paged and stay objects in the backlog.
So the order is always: ready, then backlog, then spill.

Reads happen off the event loop where they can: when the window falls below half,
the next run of entries is read ahead on the log's reader thread while they stay
at the head of the backlog; the result joins ``ready`` only if nothing touched
the backlog's head meanwhile (``_epoch``: purge, delete, or a synchronous read
that overtook it), so order is kept and nothing is read twice into the queue.
Only a taker that cannot wait (``shift(block=True)``: basic.get, drop-head) reads
synchronously, and only when the window is empty.

Body bytes are tracked by where they are (``bytes`` counts them all):
``paged_bytes`` only on disk, ``held_bytes`` in memory outside ``ready``, the rest
in ``ready``.  Every body in memory is counted by the broker's memory alarm
(``Node.account``): paging one out takes it off, reading it back puts it on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from ...store.log import MessageLog
from ...store.records import Publish
from ..message import Message
from ..redelivery import restore as restore_counts
from .memory import requeue_into

if TYPE_CHECKING:
    from ..queue import Queue

log = logging.getLogger("hutch.queue")
READ_RETRY = 1.0

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


class PagedStore:
    def __init__(self, owner: Queue, message_log: MessageLog) -> None:
        # The log records messages under the owner's ``store_id`` (and its
        # ``defs_version``), which the vhost sets after construction.
        self.owner = owner
        self.log = message_log
        broker = owner.vhost.broker
        self._account = broker.account
        self._loop = broker.loop
        self.ready: deque[Message] = deque()
        self.backlog: deque[int | Message] = deque()  # entries (paged out) or transient Messages
        self.spill: deque[Message] = deque()  # newest, waiting to be written
        self.paged = 0  # entries in the backlog: messages whose body is only on disk
        self.bytes = 0
        self.paged_bytes = 0
        self.held_bytes = 0
        self._next = 1  # position of the next message to join ``ready``
        self._page_out_waiting = False  # a log callback will page out the spill
        self._read_retry: asyncio.TimerHandle | None = None  # a failed read is tried again then
        # Recovered ids that had been delivered before the restart: they come back
        # redelivered when read (and stay so in the next snapshot).
        self._delivered: set[int] = set()
        self.closed = False
        # The read-ahead under way: the entries it reads (still the head of the
        # backlog), and the epoch it started in; see _start_read.
        self._reading: list[int] | None = None
        self._epoch = 0

    def __len__(self) -> int:
        return len(self.ready) + len(self.backlog) + len(self.spill)

    # -- the QueueStore interface ---------------------------------------------------
    def push(self, msg: Message) -> bool:
        size = len(msg.body)
        if msg.persistent and msg.msg_id is None:  # (a fired delayed message's copy
            # comes logged already: broker/delayed_store.py)
            # Before anything is counted: if the log refuses the message, it is not
            # queued, and neither ``bytes`` nor the memory alarm may keep its size.
            self.log.add(self.owner, msg)
        self.bytes += size
        self._account(size)
        if self.spill or self.backlog or not self._room_in_memory():
            self.spill.append(msg)
            self.held_bytes += size
            self._page_out()
            if self.spill and not self._page_out_waiting:
                # Page the tail of a burst out once it is written, without
                # waiting for another publish to come and do it.
                self._page_out_waiting = True
                self.log.when_durable(self._written)
            return False
        msg.position = self._next
        self._next += 1
        self.ready.append(msg)
        return True

    def shift(self, block: bool = True) -> Message | None:
        ready = self.ready
        if not ready:
            if not (self.backlog or self.spill):
                return None
            if block:
                self._refill()
            elif self._reading is None and self._read_retry is None:
                self._refill(ahead=True)  # the read's landing wakes the queue
            if not ready:
                return None  # reading, or unreadable for now (_read_failed wakes the queue)
        msg = ready.popleft()
        self.bytes -= len(msg.body)
        if (self._reading is None and (self.backlog or self.spill) and self._read_retry is None
                and self._wants_refill()):
            self._refill(ahead=True)
        return msg

    def head(self) -> Message | None:
        return self.ready[0] if self.ready else None

    def requeue(self, msgs: list[Message]) -> None:
        self.bytes += requeue_into(self.ready, msgs)

    def mark_delivered(self, msg: Message) -> None:
        self.log.delivered(self.owner, msg)  # so a restart marks it redelivered

    def settle(self, msg: Message) -> None:
        self._account(-len(msg.body))
        if msg.msg_id is not None:
            self.log.remove(self.owner, msg)

    def purge(self) -> int:
        self._drop_read()
        count = len(self)
        while self.ready:
            self.settle(self.ready.popleft())
        queue_id = self.owner.store_id
        for item in self.backlog:
            if isinstance(item, int):
                self.log.forget(queue_id, item >> 32)
            else:
                self.settle(item)
        self.backlog.clear()
        self.paged = 0
        while self.spill:
            self.settle(self.spill.popleft())
        self.bytes = self.paged_bytes = self.held_bytes = 0
        self._delivered.clear()
        return count

    def restore(self, entries: list[int], size: int, delivered: set[int]) -> None:
        self.backlog.extend(entries)
        self.paged += len(entries)
        self.bytes += size
        self.paged_bytes += size
        self._delivered |= delivered

    def snapshot(self, delivered: set[int]) -> tuple[list[int], int] | None:
        entries: list[int] = []
        transient = 0
        recovered = self._delivered
        for part in (self.ready, self.backlog, self.spill):
            for item in part:
                if isinstance(item, int):
                    entries.append(item)
                    if recovered and (item >> 32) in recovered:
                        delivered.add(item >> 32)
                    continue
                if item.msg_id is None:
                    transient += len(item.body)  # does not survive a restart
                    continue
                if item.store_pos is None:
                    return None
                entries.append((item.msg_id << 32) | item.store_pos)
                if item.redelivered:
                    delivered.add(item.msg_id)
        # ``bytes`` counts every ready body, paged out or not.
        return entries, self.bytes - transient

    def close(self) -> None:
        self.closed = True
        self._drop_read()
        if self._read_retry is not None:
            self._read_retry.cancel()
            self._read_retry = None

    # -- the window --------------------------------------------------------------
    def _room_in_memory(self) -> bool:
        """Whether a new message (already counted in ``bytes``) may join ``ready``;
        only asked while nothing is paged out or held, so ``bytes`` is exactly what
        ``ready`` will hold.  The first one always may."""
        return (self.bytes <= WINDOW_BYTES or not self.ready) and len(self.ready) < WINDOW_MAX

    def _window_bytes(self) -> int:
        """Body bytes in the ``ready`` list (the in-memory head of the queue)."""
        return self.bytes - self.paged_bytes - self.held_bytes

    def _wants_refill(self) -> bool:
        """The window is below half of it (callers check that something waits behind)."""
        return len(self.ready) < REFILL_BELOW and self._window_bytes() < REFILL_BELOW_BYTES

    def _written(self, ok: bool) -> None:
        """The log wrote the batch holding (at least) the oldest spilled message."""
        self._page_out_waiting = False
        if self.closed or not self.spill:
            return
        before = len(self.spill)
        self._page_out()
        # Newer messages are in a later batch: wait for it too.  Not after a failed
        # write or without progress, which would only spin; the next publish retries.
        if ok and self.spill and len(self.spill) < before:
            self._page_out_waiting = True
            self.log.when_durable(self._written)

    def _page_out(self) -> None:
        """Move written messages from spill to the backlog as entries, freeing their bytes."""
        spill = self.spill
        backlog = self.backlog
        freed = 0
        while spill:
            msg = spill[0]
            if msg.msg_id is None:
                backlog.append(spill.popleft())  # transient: stays an object
            elif msg.store_pos is not None:
                spill.popleft()
                backlog.append((msg.msg_id << 32) | msg.store_pos)
                self.paged += 1
                freed += len(msg.body)
            else:
                break  # not written yet; later messages wait behind it
        if freed:
            self.held_bytes -= freed
            self.paged_bytes += freed
            self._account(-freed)

    # -- reading back ---------------------------------------------------------------
    def _refill(self, ahead: bool = False) -> None:
        """Top the in-memory ready list back up from the backlog, then the spill, to
        WINDOW messages or WINDOW_BYTES, whichever comes first (at least one).
        ``ahead``: entries are read on the reader thread (landing later, in
        ``_read_done``), not here; what is in memory (spill, transient) moves now."""
        dropped = False
        if not ahead:
            dropped = self._reading is not None
            self._drop_read()  # read here and now: a read-ahead would come too late
        self._page_out()
        want = WINDOW - len(self.ready)
        room = WINDOW_BYTES - self._window_bytes()
        backlog, spill = self.backlog, self.spill
        moved: list[Message] = []
        held = 0  # bytes moved from held (spill, transient) into the window
        while want > 0 and room > 0 and backlog:
            if isinstance(backlog[0], int):
                # Sizes are unknown until read: take as many as the average paged
                # message says fit, then look again.
                fit = room * self.paged // self.paged_bytes if self.paged_bytes > 0 else want
                n = min(want, max(1, fit))
                run: list[int] = []
                if ahead:
                    for item in backlog:
                        if n <= 0 or not isinstance(item, int):
                            break
                        run.append(item)
                        n -= 1
                    self._start_read(run)
                    break
                while n > 0 and backlog and isinstance(backlog[0], int):
                    run.append(backlog.popleft())  # type: ignore[arg-type]
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
                moved.append(msg)  # type: ignore[arg-type]
                held += len(msg.body)  # type: ignore[union-attr]
                room -= len(msg.body)  # type: ignore[union-attr]
                want -= 1
        while want > 0 and room > 0 and spill and not backlog:
            msg = spill.popleft()
            moved.append(msg)
            held += len(msg.body)
            room -= len(msg.body)
            want -= 1
        self.held_bytes -= held
        self._lost_bytes_gone()
        self._append(moved)
        if dropped and self.ready:
            # Consumers that were waiting for the dropped read-ahead: dispatch again.
            self._loop.call_soon(self.owner.wake)

    def _append(self, msgs: list[Message]) -> None:
        position = self._next
        ready = self.ready
        for msg in msgs:
            msg.position = position
            position += 1
            ready.append(msg)
        self._next = position

    def _start_read(self, run: list[int]) -> None:
        """Read ``run`` (the head of the backlog, left there) on the reader thread."""
        try:
            fut = self.log.read_entries_soon(run)
        except OSError as exc:
            self._read_failed(exc)
            return
        self._reading = run
        epoch = self._epoch
        fut.add_done_callback(lambda f: self._read_done(epoch, run, f))

    def _drop_read(self) -> None:
        """Whatever the read-ahead under way brings back is ignored: the backlog's
        head changes (purge, delete) or is read synchronously instead."""
        if self._reading is not None:
            self._reading = None
            self._epoch += 1

    def _read_done(self, epoch: int, run: list[int],
                   fut: asyncio.Future[list[Publish | None]]) -> None:
        if epoch != self._epoch or self.closed or fut.cancelled():
            return
        self._reading = None
        exc = fut.exception()
        if exc is not None:
            self._read_failed(exc if isinstance(exc, OSError) else OSError(str(exc)))
            return
        # Nothing took entries off the backlog's head since (that bumps the epoch):
        # they are exactly ``run``, in order.
        backlog = self.backlog
        for _ in run:
            backlog.popleft()
        loaded, size = self._decode(run, fut.result())
        self.paged -= len(run)
        self.paged_bytes -= size
        self._lost_bytes_gone()
        self._append(loaded)
        self.owner.wake()

    def _load(self, run: list[int]) -> tuple[list[Message], int]:
        """Read paged-out messages back from the log now; with their body bytes."""
        return self._decode(run, self.log.read_entries(run))

    def _decode(self, run: list[int], pubs: list[Publish | None]) -> tuple[list[Message], int]:
        """Messages from the records read for ``run``; their bodies count as in memory."""
        delivered = self._delivered
        counts = self.log.counts  # return counts recovered or recorded (redelivery.py)
        now_wall, now_mono = time.time(), time.monotonic()
        out = []
        size = 0
        owner = self.owner
        for e, pub in zip(run, pubs, strict=True):
            if pub is None:
                # Unreadable (logged by the log): lost.  The log forgets it too, so
                # its segment is not pinned for good by a message nobody can read.
                self.log.forget(owner.store_id, e >> 32)
                continue
            expires_at = None
            if pub.expires_ms:
                expires_at = now_mono + (pub.expires_ms / 1000.0 - now_wall)
            msg = Message(pub.exchange, pub.routing_key, pub.header, pub.body, True, expires_at)
            msg.queue = owner
            msg.msg_id = pub.seq
            msg.store_pos = e & 0xFFFFFFFF
            if delivered and pub.seq in delivered:
                delivered.discard(pub.seq)
                msg.redelivered = True
            if counts and (c := counts.get(pub.seq)) is not None:
                restore_counts(msg, c)
            size += len(pub.body)
            out.append(msg)
        self._account(size)
        return out, size

    def _lost_bytes_gone(self) -> None:
        """Once every paged entry is read back, what ``paged_bytes`` still counts is the
        size of entries that could not be read (lost, logged by the log): the queue no
        longer holds those bytes either."""
        if not self.paged and self.paged_bytes:
            self.bytes -= self.paged_bytes
            self.paged_bytes = 0

    def _read_failed(self, exc: OSError) -> None:
        """Paged messages could not be read back (EIO): they stay paged, in order, and
        the queue tries again in a second.  Consumers wait meanwhile; nothing is lost."""
        if self._read_retry is not None:
            return
        log.error("queue '%s': cannot read paged-out messages back (%s); retrying in %.0f s",
                  self.owner.name, exc, READ_RETRY)
        self._read_retry = self._loop.call_later(READ_RETRY, self._retry_read)

    def _retry_read(self) -> None:
        self._read_retry = None
        if not self.closed:
            self.owner.wake()
