"""The durable message log: segment files, group commit, acks, segment reclamation.

Write path.  ``add``/``remove``/``delivered`` only append records to an
in-memory batch on the event loop.  Once per loop turn the batch is handed to
one writer thread that does ``write`` + ``fsync``; while it runs, the next
batch fills up.  So a thousand publishes arriving together share one fsync
(group commit) and the loop never blocks on the disk.  ``when_durable``
callbacks fire, on the loop, once the batch holding their records is synced —
that is when publisher confirms and tx.commit-ok are sent.

Sync policy ``always`` (default) fsyncs every batch: a confirm means the
bytes are on disk.  ``none`` writes without fsync (RabbitMQ classic-queue
semantics: survives a process crash, not a power loss).

Segments are named by the seq of their first record (zero-padded, so they
sort) and start with an 8-byte magic and a version.  A message's seq decides
its segment (segments cover consecutive seq ranges), so no per-message map
is kept.  A segment whose messages are all gone is deleted (``reclaim.py``).

Write errors (ENOSPC, EIO) are sticky: the failed batch is cut off the file,
its confirms become nacks, and every later batch fails the same way until a
retry (every few seconds) writes successfully again.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import errno
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from ..protocol.fast import shortstr
from . import definitions, records, snapshot
from .files import Files
from .fired import FireMixin
from .reads import Located, read_located
from .reclaim import ReclaimMixin, Refs
from .recovery import SEGMENT_HEADER, Recovered, RecoveryMixin, Segment, entry, segment_name

__all__ = ["MessageLog", "Recovered", "Segment", "entry", "segment_name"]

log = logging.getLogger("hutch.store")

SEGMENT_SIZE = 64 * 1024 * 1024
LARGE_BODY = 64 * 1024  # bodies at least this big are written without being copied


class _Batch:
    __slots__ = ("acks", "callbacks", "carried", "data", "defs", "delivers", "msgs", "offsets",
                 "returns", "segment", "start")

    def __init__(self) -> None:
        self.data: list[bytes | tuple[bytes, bytes]] = []
        self.msgs: list[Any] = []  # the messages of the first len(msgs) records (PUBLISH)
        self.offsets: list[int] = []
        self.carried: Segment | None = None  # whose references this batch re-records
        self.callbacks: list[Callable[[bool], None]] = []
        self.segment: Segment | None = None
        self.start = 0  # where in the segment the batch's first byte goes
        self.defs = 0  # definitions version that must be durable before its confirms
        # The (queue id, message id) pairs of its ACK and DELIVER records: if the batch
        # fails they go back into the next one (so an ack is not forgotten by a hiccup).
        self.acks: list[tuple[int, int]] = []
        self.delivers: list[tuple[int, int]] = []
        self.returns: list[records.Counts] = []  # its RETURNED entries, likewise


class MessageLog(RecoveryMixin, ReclaimMixin, FireMixin):
    """Implements the ``MessageStore`` seam (see ``store/__init__.py``)."""

    def __init__(self, directory: str, loop: asyncio.AbstractEventLoop, files: Files | None = None,
                 sync: str = "always", segment_size: int = SEGMENT_SIZE,
                 definitions_dir: str | None = None) -> None:
        if sync not in ("always", "none"):
            raise ValueError(f"unknown sync policy {sync!r} (use 'always' or 'none')")
        self.dir = directory
        self.definitions_dir = definitions_dir or os.path.dirname(directory.rstrip("/"))
        self.loop = loop
        self.files = files or Files()
        self.sync = sync
        self.segment_size = segment_size
        self.segments: list[Segment] = []
        self._firsts: list[int] = []  # first_seq of each segment, for bisect
        self.seq = 0  # last seq handed out
        self._fd: int | None = None
        self._pending = _Batch()
        self._pending_publishes = 0
        self._pending_target: int | None = None  # oldest segment the pending acks refer to
        self._carry: Segment | None = None  # references of this segment go in the next batch
        self._carrying = False  # a carry-forward is under way (one at a time)
        self._scan: asyncio.Future[Refs | None] | None = None  # its segment being read
        self._pending_dead = 0  # messages published *and* removed before being written
        self._acks: list[tuple[int, int]] = []
        self._delivers: list[tuple[int, int]] = []
        self._returns: list[records.Counts] = []
        # Return counts of live messages that have any (msg id -> (delivery count,
        # acquired count)), as the log holds them: kept up to date on the loop, filled
        # by recovery, written into the shutdown snapshot (broker/redelivery.py).
        self.counts: dict[int, tuple[int, int]] = {}
        self._assigned_upto = 0  # highest seq already placed in a segment
        # Messages living outside their seq range's segment (salvaged from a
        # quarantined segment into a newer one): id -> segment.
        self._moved: dict[int, Segment] = {}
        self._inflight: _Batch | None = None
        self._scheduled = False
        self.error: OSError | None = None
        self._retry_at = 0.0
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hutch-fsync")
        # Paged-out messages are read back on their own thread, so a read never waits
        # behind a batch's fsync (nor a batch behind a read).
        self._read_executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="hutch-read")
        self.definitions = definitions.DefinitionsWriter(loop, self.files, self.definitions_dir)
        # The newest definitions version a queue in the pending batch was declared
        # at: a message is not confirmed before its queue's definition is durable.
        self._pending_defs = 0
        # The highest such version of any batch written so far: confirms wait for it
        # while it is not durable, so no confirm overtakes an earlier batch's.
        self._confirm_gate = 0
        self._retry_timer: asyncio.TimerHandle | None = None
        self.failures = 0  # batches that did not reach the disk (see when_durable)
        self._readers: dict[str, int] = {}  # read-only fds for paging messages back in
        # Recovered messages that had been delivered before the restart (redelivered=true).
        self.recovered_delivered: set[int] = set()
        # Statistics.
        self.fsyncs = 0
        self.bytes_written = 0
        self.files.makedirs(directory)

    # -- the MessageStore seam -----------------------------------------------------
    def add(self, queue: Any, msg: Any, expires_ms: int = 0) -> None:
        """``expires_ms``: a delayed message's due time (store/fired.py), else 0."""
        self.seq += 1
        msg.msg_id = self.seq
        if msg.expires_at is not None:
            expires_ms = int((time.time() + (msg.expires_at - time.monotonic())) * 1000)
        self._pending.data.append(records.encode_publish_parts(
            self.seq, queue.store_id, 0, expires_ms, shortstr(msg.exchange),
            shortstr(msg.routing_key), msg.header, msg.body))
        self._pending.msgs.append(msg)
        self._pending_publishes += 1
        if queue.defs_version > self._pending_defs:
            self._pending_defs = queue.defs_version
        if not self._scheduled:  # (inlined _schedule: three calls per message add up)
            self._schedule()

    def remove(self, queue: Any, msg: Any) -> None:
        msg_id = msg.msg_id
        msg.msg_id = None
        if self.counts:
            self.counts.pop(msg_id, None)
        self._acks.append((queue.store_id, msg_id))
        if msg_id > self._assigned_upto:
            self._pending_dead += 1
        else:
            seg = self._segment_of(msg_id)
            if seg is not None:
                seg.live -= 1
                self._note_target(seg)
                if not seg.live:
                    self._keep_until_settled(seg)
        if not self._scheduled:
            self._schedule()

    def delivered(self, queue: Any, msg: Any) -> None:
        msg_id = msg.msg_id
        self._delivers.append((queue.store_id, msg_id))
        if msg_id <= self._assigned_upto:
            seg = self._segment_of(msg_id, pop=False)
            if seg is not None:
                self._note_target(seg)
        if not self._scheduled:
            self._schedule()

    def returned(self, queue: Any, msg: Any, counts: tuple[int, int] | None = None) -> None:
        """``msg`` (with a ``msg_id``) came back to ``queue`` with new return counts
        (``msg.returns``), or is held and would have ``counts`` if its holder were lost
        (``broker/redelivery.held``): record them so they survive a restart."""
        msg_id = msg.msg_id
        delivery_count, acquired_count = counts if counts is not None else msg.returns
        self.counts[msg_id] = (delivery_count, acquired_count)
        self._returns.append((queue.store_id, msg_id, min(delivery_count, _U32_MAX),
                              min(acquired_count, _U32_MAX)))
        if msg_id <= self._assigned_upto:
            seg = self._segment_of(msg_id, pop=False)
            if seg is not None:
                self._note_target(seg)
        if not self._scheduled:
            self._schedule()

    def _note_target(self, seg: Segment) -> None:
        if self._pending_target is None or seg.first_seq < self._pending_target:
            self._pending_target = seg.first_seq

    def when_durable(self, callback: Callable[[bool], None], since: int | None = None) -> None:
        """``callback(ok)`` once every record added so far is on disk.  ``since``: the
        value of ``failures`` when the caller added its first record; if a batch
        failed since, some of its records may be in it, and ok is False (a later
        batch succeeding says nothing about them)."""
        if since is not None and since != self.failures:
            self.loop.call_soon(callback, False)
            return
        if self._pending.data or self._acks or self._delivers or self._returns:
            self._pending.callbacks.append(callback)
        elif self._inflight is not None:
            self._inflight.callbacks.append(callback)
        elif self._confirm_gate > self.definitions.synced:
            self.definitions.when_synced(self._confirm_gate, callback)  # behind earlier batches
        else:
            self.loop.call_soon(callback, self.error is None)

    def definitions_changed(self) -> int:
        """Durable definitions changed: they are written soon, grouped, off the loop.
        Returns the change's version for ``definitions.when_synced``."""
        return self.definitions.changed()

    # -- batching -----------------------------------------------------------------
    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._inflight is not None:
            return  # _done() flushes again when the current write finishes
        batch = self._pending
        if self._acks:
            self.seq += 1
            batch.data.append(records.encode_pairs(records.ACK, self.seq, self._acks))
            batch.acks, self._acks = self._acks, []
        if self._delivers:
            self.seq += 1
            batch.data.append(records.encode_pairs(records.DELIVER, self.seq, self._delivers))
            batch.delivers, self._delivers = self._delivers, []
        if self._returns:
            self.seq += 1
            batch.data.append(records.encode_returned(self.seq, self._returns))
            batch.returns, self._returns = self._returns, []
        if not batch.data:
            for cb in batch.callbacks:
                cb(self.error is None)
            batch.callbacks.clear()
            return
        self._pending = _Batch()
        batch.carried, self._carry = self._carry, None
        batch.defs, self._pending_defs = self._pending_defs, 0
        if self.error is not None and time.monotonic() < self._retry_at:
            # Refused without touching the disk: its messages were never counted in a
            # segment, so they only leave the pending count.
            for msg in batch.msgs:
                if msg is not None and msg.msg_id is not None:  # None: a FIRED record
                    msg.msg_id = None
                    self._pending_publishes -= 1
            self._fail(batch)
            return
        lengths = list(map(_rlen, batch.data))
        size = sum(lengths)
        head = self.segments[-1] if self.segments else None
        if head is None or (head.size + size > self.segment_size and head.size > len(SEGMENT_HEADER)):
            # Named after the first seq handed out since the previous segment, so the
            # segments cover consecutive seq ranges.
            first = self._assigned_upto + 1
            head = Segment(os.path.join(self.dir, segment_name(first)), first, len(SEGMENT_HEADER))
            head.ready = False  # the writer thread creates its file
            self.segments.append(head)
            self._firsts.append(first)
        batch.segment = head
        off = batch.start = head.size
        for n in lengths[: len(batch.msgs)]:
            batch.offsets.append(off)
            off += n
        head.size += size
        head.live += self._pending_publishes - self._pending_dead
        self._pending_publishes = self._pending_dead = 0
        target = self._pending_target
        self._pending_target = None
        if target is not None and target != head.first_seq and (
                head.oldest_target is None or target < head.oldest_target):
            head.oldest_target = target
        self._assigned_upto = self.seq
        self._inflight = batch
        fut = self.loop.run_in_executor(self._executor, self._write, batch)
        fut.add_done_callback(lambda f: self._done(batch, f))

    def _write(self, batch: _Batch) -> None:
        """Runs on the writer thread: everything that touches the disk for one batch.

        On any error the file is left as it was before the batch (or, if even the
        cut fails, the next batch cuts it first): the offsets handed out on the loop
        always match the bytes on disk.
        """
        files = self.files
        seg = batch.segment
        assert seg is not None
        if not seg.ready:
            self._create_segment(seg)
        if self._fd is None:
            self._fd = files.open_append(seg.path)
        start = batch.start
        end = files.size(self._fd)
        if end != start:
            if end < start:  # never happens unless someone else cut the file
                raise OSError(errno.EIO, f"{seg.path} is {end} bytes, expected {start}")
            # What an earlier failed batch left behind because its cut failed too.
            files.ftruncate(self._fd, start)
        # Small records are joined (one cheap copy beats an iovec each); a large body
        # goes to writev as it is, never copied.
        buffers: list[bytes] = []
        run: list[bytes] = []
        for rec in batch.data:
            if isinstance(rec, tuple):
                run.append(rec[0])
                if len(rec[1]) < LARGE_BODY:
                    run.append(rec[1])
                    continue
                buffers.append(b"".join(run))
                buffers.append(rec[1])
                run = []
            else:
                run.append(rec)
        if run:
            buffers.append(b"".join(run))
        try:
            files.writev(self._fd, buffers)
            if self.sync == "always":
                files.fsync(self._fd)
        except OSError:
            # Cut the half-written batch off so the file ends on a record boundary.
            # (After a failed fsync the kernel may have dropped the pages: the
            # batch is not durable, so it goes too, and its confirms become nacks.)
            try:
                files.ftruncate(self._fd, start)
            except OSError:
                pass  # the next batch checks the size and cuts it then
            raise
        self.fsyncs += 1
        self.bytes_written += sum(map(len, buffers))

    def _create_segment(self, seg: Segment) -> None:
        """Make ``seg``'s file: header written and synced, its name synced in the
        directory.  All or nothing: on failure no half-made file stays the write
        target, and the next batch starts the segment again from scratch."""
        files = self.files
        if self._fd is not None:
            files.close(self._fd)
            self._fd = None
        fd = files.open_new(seg.path)
        try:
            files.write(fd, SEGMENT_HEADER)
            files.fsync(fd)
            files.fsync_dir(self.dir)  # the new file's name must survive a power loss too
        except OSError:
            files.close(fd)
            try:
                files.remove(seg.path)
            except OSError:
                pass  # recovery removes a torn last segment; open_new truncates it
            raise
        self._fd = fd
        seg.ready = True

    def _done(self, batch: _Batch, fut: asyncio.Future[None]) -> None:
        self._inflight = None
        exc = fut.exception()
        if exc is not None:
            seg = batch.segment
            if seg is not None:
                seg.size -= sum(map(_rlen, batch.data))
                for msg in batch.msgs:
                    if msg is not None and msg.msg_id is not None:
                        msg.msg_id = None
                        seg.live -= 1
            if self.error is None:
                log.error("message store write failed, publishes will be nacked until it "
                          "recovers: %s", exc)
            self.error = exc if isinstance(exc, OSError) else OSError(str(exc))
            self._retry_at = time.monotonic() + self.files.retry_after
            self._fail(batch)
            if batch.carried is not None:
                batch.carried.pinned = False
                self._carrying = False
        else:
            if self.error is not None:
                log.warning("message store writes succeed again")
                self.error = None
            for msg, off in zip(batch.msgs, batch.offsets, strict=True):
                if msg is not None and msg.msg_id is not None:
                    msg.store_pos = off  # on disk now: the queue may page it out
            gate = self._confirm_gate = max(self._confirm_gate, batch.defs)
            if gate > self.definitions.synced:
                # A queue of this (or an earlier) batch was declared a moment ago: its
                # messages are confirmed once its definition is durable too (else a
                # restart would drop them with the queue it does not know), and so are
                # later batches', so that no confirm overtakes theirs.
                callbacks = batch.callbacks

                def confirm_all(ok: bool) -> None:
                    for cb in callbacks:
                        cb(ok)

                self.definitions.when_synced(gate, confirm_all)
            else:
                for cb in batch.callbacks:
                    cb(True)
            if batch.carried is not None:
                # Its ACK/DELIVER/RETURNED references now live in this (newer) batch too.
                batch.carried.oldest_target = None
                batch.carried.pinned = False
                self._carrying = False
            self._reclaim()
        if (self._pending.data or self._acks or self._delivers or self._returns
                or self._pending.callbacks):
            self._flush()

    def _fail(self, batch: _Batch) -> None:
        self.failures += 1
        """A batch that did not reach the disk.  Its messages stay in their queues, in
        memory only, as if published transient (the caller took them off the store's
        books): they were nacked, will not come back after a restart, and must not
        hold up paging or pin a segment.  Its acks and deliveries go into a later
        batch, written once the disk takes writes again."""
        if batch.acks or batch.delivers or batch.returns:
            self._acks[:0] = batch.acks
            self._delivers[:0] = batch.delivers
            self._returns[:0] = batch.returns
            mids = [mid for _qid, mid in batch.acks + batch.delivers]
            mids += [r[1] for r in batch.returns]
            for mid in mids:
                seg = self._segment_of(mid, pop=False)
                if seg is not None:
                    self._note_target(seg)
            if self._retry_timer is None:
                self._retry_timer = self.loop.call_at(
                    self.loop.time() + max(0.0, self._retry_at - time.monotonic()), self._retry)
        if batch.carried is not None:
            batch.carried.pinned = False
            batch.carried = None
            self._carrying = False
        for cb in batch.callbacks:
            cb(False)

    def _retry(self) -> None:
        self._retry_timer = None
        self._schedule()

    # -- segments (deleting them: reclaim.py) ---------------------------------------
    def _segment_of(self, msg_id: int, pop: bool = True) -> Segment | None:
        if self._moved:
            seg = self._moved.pop(msg_id, None) if pop else self._moved.get(msg_id)
            if seg is not None:
                return seg
        i = bisect.bisect_right(self._firsts, msg_id) - 1
        return self.segments[i] if i >= 0 else None

    # -- reading messages back ----------------------------------------------------
    def read_entries(self, entries: list[int]) -> list[records.Publish | None]:
        """The messages behind compact entries, read from their segments, now.

        Consecutive entries usually sit next to each other in one segment, so the
        file is read in large chunks rather than a record at a time.  None for a
        message that is not where its entry says (logged); an I/O error (EIO) raises
        OSError, so the caller keeps the entries and tries again later: a disk that
        fails a read must not cost the message.
        """
        return read_located(self.files, self._locate(entries))

    def read_entries_soon(self, entries: list[int]) -> asyncio.Future[list[records.Publish | None]]:
        """``read_entries`` on the reader thread; the future's result is its result (or
        its OSError).  The segments read from stay on disk, their fds open, until it is
        done.  OSError here too if a segment cannot even be opened."""
        located = self._locate(entries)
        segs = {loc[2] for loc in located if loc is not None}
        for seg in segs:
            seg.reads += 1

        def unpin(_fut: object) -> None:
            for seg in segs:
                seg.reads -= 1

        fut = self.loop.run_in_executor(self._read_executor, read_located, self.files, located)
        fut.add_done_callback(unpin)
        return fut

    def _locate(self, entries: list[int]) -> list[Located | None]:
        """On the loop, where the segment list and the fds change: each entry's id,
        offset, segment and read fd (None: no segment holds that id)."""
        out: list[Located | None] = []
        seg: Segment | None = None
        fd = -1
        for e in entries:
            mid = e >> 32
            s = self._segment_of(mid, pop=False)
            if s is None:
                out.append(None)
                continue
            if s is not seg:
                seg, fd = s, self._reader(s)
            out.append((mid, e & 0xFFFFFFFF, s, fd))
        return out

    def _reader(self, seg: Segment) -> int:
        fd = self._readers.get(seg.path)
        if fd is None:
            fd = self._readers[seg.path] = self.files.open_read(seg.path)
        return fd

    def remove_id(self, queue: Any, msg_id: int) -> None:
        """Like ``remove`` for a message that is only an entry (paged out)."""
        self.forget(queue.store_id, msg_id)

    def forget(self, queue_id: int, msg_id: int) -> None:
        """Message ``msg_id`` of queue ``queue_id`` is gone: a paged-out entry purged,
        or a record of a queue that no longer exists (recovery)."""
        self._acks.append((queue_id, msg_id))
        if self.counts:
            self.counts.pop(msg_id, None)
        seg = self._segment_of(msg_id)
        if seg is not None:
            seg.live -= 1
            self._note_target(seg)  # the ACK must outlive the segment it cancels
        self._schedule()

    def close(self) -> None:
        self._scan = None  # a read still under way is not acted on
        if self._retry_timer is not None:
            self._retry_timer.cancel()
        self._read_executor.shutdown(wait=True)  # no read may use an fd closed below
        for fd in self._readers.values():
            self.files.close(fd)
        self._readers.clear()
        if self._fd is not None:
            self.files.close(self._fd)
            self._fd = None
        self._executor.shutdown(wait=True)
        self.definitions.close()

    def write_snapshot(self, queues: list[snapshot.QueueState], delivered: set[int]) -> bool:
        """At a clean stop, once ``settle`` returned: write down every durable queue's
        live entries so the next start need not scan the log (see ``snapshot.py``).
        Skipped (returns False) when the log is not in a state a snapshot can describe."""
        why = ("writes still under way" if not self._idle() else
               "the disk failed" if self.error is not None else
               "salvaged records are in use" if self._moved else None)
        if why is not None:
            log.warning("no shutdown snapshot (%s): the next start scans the log", why)
            return False
        segs = [snapshot.SegmentState(s.first_seq, s.size, s.live, s.oldest_target)
                for s in self.segments]
        try:
            if self._fd is not None and self.sync != "always":
                self.files.fsync(self._fd)  # the sizes recorded must be the sizes on disk
            counts = self.counts
            if counts:  # only the live messages' (a failed write may leave others)
                live = {e >> 32 for q in queues for e in q.entries}
                counts = {m: c for m, c in counts.items() if m in live}
            snapshot.write(self.dir, self.files,
                           snapshot.Snapshot(self.seq, segs, queues, delivered, counts))
        except OSError as exc:
            log.warning("could not write the shutdown snapshot (the next start scans the log): %s",
                        exc)
            return False
        return True

    def _idle(self) -> bool:
        return (self._inflight is None and not self._pending.data and not self._pending.callbacks
                and not self._acks and not self._delivers and not self._returns
                and not self._carrying)

    async def settle(self) -> None:
        """Wait until nothing is pending or being written, carry-forwards included."""
        await self.drain()
        for _ in range(100):  # bounded: a stop must never hang on bookkeeping
            if self._idle():
                return
            if self._scan is not None:  # a segment being read for a carry-forward
                await asyncio.wait([self._scan])
            await self.drain()

    async def drain(self) -> None:
        """Wait until every record handed to the log so far is written."""
        done: asyncio.Future[bool] = self.loop.create_future()

        def written(ok: bool) -> None:
            if not done.done():
                done.set_result(ok)

        self.when_durable(written)
        self._schedule()
        await done


_U32_MAX = 0xFFFFFFFF


def _rlen(rec: bytes | tuple[bytes, bytes]) -> int:
    return len(rec) if isinstance(rec, bytes) else len(rec[0]) + len(rec[1])
