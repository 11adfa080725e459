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
is kept.  A segment whose messages are all gone is deleted — oldest first,
because an ACK record in a newer segment may still be needed to cancel a
PUBLISH in an older one.

Write errors (ENOSPC, EIO) are sticky: the failed batch is cut off the file,
its confirms become nacks, and every later batch fails the same way until a
retry (every few seconds) writes successfully again.
"""

from __future__ import annotations

import array
import asyncio
import bisect
import concurrent.futures
import logging
import os
import struct
import time
from collections.abc import Callable
from typing import Any

from ..errors import HardError
from ..protocol.constants import INTERNAL_ERROR
from . import definitions, records
from .files import Files

log = logging.getLogger("hutch.store")

MAGIC = b"HUTCHLOG"
VERSION = 1
_seg_header = struct.Struct(">8sI")
SEGMENT_HEADER = _seg_header.pack(MAGIC, VERSION)
SEGMENT_SIZE = 64 * 1024 * 1024
READ_CHUNK = 256 * 1024
LARGE_BODY = 64 * 1024  # bodies at least this big are written without being copied
RETRY_AFTER = 2.0


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}.seg"


class Segment:
    __slots__ = ("first_seq", "live", "oldest_target", "path", "pinned", "size")

    def __init__(self, path: str, first_seq: int, size: int) -> None:
        self.path = path
        self.first_seq = first_seq
        self.size = size  # bytes written (or handed to the writer)
        self.live = 0  # PUBLISH records in it whose message is still in a queue
        # first_seq of the oldest *other* segment one of its ACK/DELIVER records
        # refers to (None: only to itself).  While that segment exists, this one
        # must stay, or a restart would bring an acked message back.
        self.oldest_target: int | None = None
        self.pinned = False  # its references are being carried forward: keep it for now

    def __repr__(self) -> str:
        return f"<Segment {os.path.basename(self.path)} live={self.live} size={self.size}>"


class _Batch:
    __slots__ = ("callbacks", "carried", "data", "msgs", "new_segment", "offsets", "segment")

    def __init__(self) -> None:
        self.data: list[bytes | tuple[bytes, bytes]] = []
        self.msgs: list[Any] = []  # the messages of the first len(msgs) records (PUBLISH)
        self.offsets: list[int] = []
        self.carried: Segment | None = None  # whose references this batch re-records
        self.callbacks: list[Callable[[bool], None]] = []
        self.segment: Segment | None = None
        self.new_segment = False


class MessageLog:
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
        self._pending_dead = 0  # messages published *and* removed before being written
        self._acks: list[tuple[int, int]] = []
        self._delivers: list[tuple[int, int]] = []
        self._assigned_upto = 0  # highest seq already placed in a segment
        # Messages living outside their seq range's segment (salvaged from a
        # quarantined segment into a newer one): id -> segment.
        self._moved: dict[int, Segment] = {}
        self._inflight: _Batch | None = None
        self._scheduled = False
        self.error: OSError | None = None
        self._retry_at = 0.0
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hutch-fsync")
        self._readers: dict[str, int] = {}  # read-only fds for paging messages back in
        # Recovered messages that had been delivered before the restart (redelivered=true).
        self.recovered_delivered: set[int] = set()
        # Statistics.
        self.fsyncs = 0
        self.bytes_written = 0
        os.makedirs(directory, exist_ok=True)

    # -- the MessageStore seam -----------------------------------------------------
    def add(self, queue: Any, msg: Any) -> None:
        self.seq += 1
        msg.store_ref = self.seq
        expires_ms = 0
        if msg.expires_at is not None:
            expires_ms = int((time.time() + (msg.expires_at - time.monotonic())) * 1000)
        self._pending.data.append(records.encode_publish_parts(
            self.seq, queue.store_id, 0, expires_ms, _shortstr(msg.exchange),
            _shortstr(msg.routing_key), msg.header, msg.body))
        self._pending.msgs.append(msg)
        self._pending_publishes += 1
        self._schedule()

    def remove(self, queue: Any, msg: Any) -> None:
        msg_id = msg.store_ref
        msg.store_ref = None
        self._acks.append((queue.store_id, msg_id))
        if msg_id > self._assigned_upto:
            self._pending_dead += 1
        else:
            seg = self._segment_of(msg_id)
            if seg is not None:
                seg.live -= 1
                self._note_target(seg)
        self._schedule()

    def delivered(self, queue: Any, msg: Any) -> None:
        msg_id = msg.store_ref
        self._delivers.append((queue.store_id, msg_id))
        if msg_id <= self._assigned_upto:
            seg = self._segment_of(msg_id, pop=False)
            if seg is not None:
                self._note_target(seg)
        self._schedule()

    def _note_target(self, seg: Segment) -> None:
        if self._pending_target is None or seg.first_seq < self._pending_target:
            self._pending_target = seg.first_seq

    def when_durable(self, callback: Callable[[bool], None]) -> None:
        if self._pending.data or self._acks or self._delivers:
            self._pending.callbacks.append(callback)
        elif self._inflight is not None:
            self._inflight.callbacks.append(callback)
        else:
            self.loop.call_soon(callback, self.error is None)

    def save_definitions(self, broker: Any) -> None:
        """Rewrite the definitions file (on the loop: declares are rare and must be
        on disk before declare-ok, so a restart never loses an acknowledged queue)."""
        try:
            definitions.save(broker, self.definitions_dir, self.files)
        except OSError as exc:
            log.error("could not write definitions: %s", exc)
            # Never answer declare-ok for something that would not survive a restart:
            # the client's connection is closed with 541 instead.
            raise HardError(INTERNAL_ERROR, f"could not write definitions: {exc.strerror or exc}") \
                from None

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
            self._acks = []
        if self._delivers:
            self.seq += 1
            batch.data.append(records.encode_pairs(records.DELIVER, self.seq, self._delivers))
            self._delivers = []
        if not batch.data:
            for cb in batch.callbacks:
                cb(self.error is None)
            batch.callbacks.clear()
            return
        self._pending = _Batch()
        batch.carried, self._carry = self._carry, None
        if self.error is not None and time.monotonic() < self._retry_at:
            self._fail(batch)
            return
        size = sum(map(_rlen, batch.data))
        head = self.segments[-1] if self.segments else None
        if head is None or (head.size + size > self.segment_size and head.size > len(SEGMENT_HEADER)):
            # Named after the first seq handed out since the previous segment, so the
            # segments cover consecutive seq ranges.
            first = self._assigned_upto + 1
            head = Segment(os.path.join(self.dir, segment_name(first)), first, len(SEGMENT_HEADER))
            self.segments.append(head)
            self._firsts.append(first)
            batch.new_segment = True
        batch.segment = head
        off = head.size
        for rec in batch.data[: len(batch.msgs)]:
            batch.offsets.append(off)
            off += _rlen(rec)
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
        """Runs on the writer thread: everything that touches the disk for one batch."""
        files = self.files
        seg = batch.segment
        assert seg is not None
        if batch.new_segment:
            if self._fd is not None:
                files.close(self._fd)
                self._fd = None
            self._fd = files.open_append(seg.path)
            files.write(self._fd, SEGMENT_HEADER)
            files.fsync(self._fd)
            files.fsync_dir(self.dir)  # the new file's name must survive a power loss too
        if self._fd is None:
            self._fd = files.open_append(seg.path)
        start = os.lseek(self._fd, 0, os.SEEK_END)
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
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                pass
            raise
        self.fsyncs += 1
        self.bytes_written += sum(map(len, buffers))

    def _done(self, batch: _Batch, fut: asyncio.Future[None]) -> None:
        self._inflight = None
        exc = fut.exception()
        if exc is not None:
            if batch.segment is not None:
                batch.segment.size -= sum(map(_rlen, batch.data))
            if self.error is None:
                log.error("message store write failed, publishes will be nacked until it "
                          "recovers: %s", exc)
            self.error = exc if isinstance(exc, OSError) else OSError(str(exc))
            self._retry_at = time.monotonic() + RETRY_AFTER
            self._fail(batch)
            if batch.carried is not None:
                batch.carried.pinned = False
                self._carrying = False
        else:
            if self.error is not None:
                log.warning("message store writes succeed again")
                self.error = None
            for msg, off in zip(batch.msgs, batch.offsets, strict=True):
                if msg.store_ref is not None:
                    msg.store_pos = off  # on disk now: the queue may page it out
            for cb in batch.callbacks:
                cb(True)
            if batch.carried is not None:
                # Its ACK/DELIVER references now live in this (newer) batch too.
                batch.carried.oldest_target = None
                batch.carried.pinned = False
                self._carrying = False
            self._reclaim()
        if self._pending.data or self._acks or self._delivers or self._pending.callbacks:
            self._flush()

    def _fail(self, batch: _Batch) -> None:
        for cb in batch.callbacks:
            cb(False)

    # -- reclamation ---------------------------------------------------------------
    def _segment_of(self, msg_id: int, pop: bool = True) -> Segment | None:
        if self._moved:
            seg = self._moved.pop(msg_id, None) if pop else self._moved.get(msg_id)
            if seg is not None:
                return seg
        i = bisect.bisect_right(self._firsts, msg_id) - 1
        return self.segments[i] if i >= 0 else None

    def _reclaim(self) -> None:
        """Delete every segment that holds no live message and whose ACK/DELIVER
        records refer to no older segment still on disk (never the head).

        So one message nobody consumes pins its own segment, not the log after it.
        """
        i = 0
        while i < len(self.segments) - 1:
            seg = self.segments[i]
            if seg.live > 0 or seg.pinned:
                i += 1
                continue
            if not self._targets_gone(seg, i):
                if not self._carrying:
                    self._carry_forward(seg)
                i += 1
                continue
            del self.segments[i]
            del self._firsts[i]
            fd = self._readers.pop(seg.path, None)
            if fd is not None:
                os.close(fd)
            try:
                self.files.remove(seg.path)
            except OSError as exc:
                log.warning("could not delete segment %s: %s", seg.path, exc)

    def _carry_forward(self, seg: Segment) -> None:
        """``seg`` holds no live message but some of its ACK/DELIVER records refer to
        older segments still on disk.  Copy just those references into the next
        batch; once it is synced ``seg`` can go.  Without this, acks that crossed a
        segment boundary would chain every later segment to one long-lived message.
        """
        try:
            data = self.files.read(seg.path)
        except OSError as exc:
            log.warning("could not read %s to reclaim it: %s", seg.path, exc)
            return
        off = len(SEGMENT_HEADER)
        acks: list[tuple[int, int]] = []
        delivers: list[tuple[int, int]] = []
        while off < len(data):
            try:
                rec = records.read_record(data, off)
            except records.CorruptRecordError:
                return
            if rec is None:
                break
            rtype, _seq, start, end = rec
            if rtype == records.ACK or rtype == records.DELIVER:
                keep = acks if rtype == records.ACK else delivers
                for qid, mid in records.decode_pairs(data, start):
                    target = self._segment_of(mid, pop=False)
                    if target is not None and target.first_seq < seg.first_seq:
                        keep.append((qid, mid))
                        self._note_target(target)
            off = end
        self._acks.extend(acks)
        self._delivers.extend(delivers)
        seg.pinned = True
        self._carry = seg
        self._carrying = True
        self._schedule()

    def _targets_gone(self, seg: Segment, index: int) -> bool:
        """No segment older than ``seg`` (at ``index``) and at or after its oldest
        ACK/DELIVER target still exists."""
        if seg.oldest_target is None or index == 0:
            return True
        return self._firsts[index - 1] < seg.oldest_target

    # -- recovery ------------------------------------------------------------------
    def recover(self) -> dict[int, Recovered]:
        """Read every segment and return, per queue id, its live messages as compact
        entries in publish order (see ``entry``).  Torn tails are cut off, corrupt
        middle segments quarantined (their readable messages rewritten into a fresh
        segment); afterwards the log is ready for appending.

        Only offsets are kept, not bodies, so recovering a million messages costs
        tens of megabytes; ``read_entries`` fetches bodies when consumers get there.
        """
        names = sorted(n for n in os.listdir(self.dir) if n.endswith(".seg"))
        per_queue: dict[int, _Scan] = {}
        acked: set[int] = set()
        delivered: set[int] = set()
        salvage: dict[int, records.Publish] = {}
        read_record = records.read_record
        for i, name in enumerate(names):
            path = os.path.join(self.dir, name)
            data = self.files.read(path)
            last = i == len(names) - 1
            if data[: len(SEGMENT_HEADER)] != SEGMENT_HEADER:
                if last and len(data) < len(SEGMENT_HEADER) and SEGMENT_HEADER.startswith(data):
                    log.warning("removing empty segment %s (torn while being created)", name)
                    self.files.remove(path)
                    continue
                self._quarantine(path, "bad segment header")
                continue
            seg = Segment(path, int(name[:-4]), len(data))
            seg_index = len(self.segments)
            self.segments.append(seg)
            self._firsts.append(seg.first_seq)
            off = len(SEGMENT_HEADER)
            problem = None
            seen_here: list[tuple[int, int]] = []  # (queue id, msg id) published in this segment
            while off < len(data):
                try:
                    rec = read_record(data, off)
                except records.CorruptRecordError as exc:
                    problem = str(exc)
                    break
                if rec is None:
                    problem = f"incomplete record at offset {off}"
                    break
                rtype, seq, start, end = rec
                if seq > self.seq:
                    self.seq = seq
                if rtype == records.PUBLISH:
                    qid, body_size, flags = records.publish_summary(data, start, end)
                    scan = per_queue.get(qid)
                    if scan is None:
                        scan = per_queue[qid] = _Scan()
                    scan.add(seq, off, body_size, seg_index)
                    seen_here.append((qid, seq))
                    if seq < seg.first_seq:
                        self._moved[seq] = seg  # salvaged here by an earlier recovery
                    if flags & records.FLAG_DELIVERED:
                        delivered.add(seq)
                elif rtype == records.ACK or rtype == records.DELIVER:
                    into = acked if rtype == records.ACK else delivered
                    oldest = seg.oldest_target
                    for _qid, mid in records.decode_pairs(data, start):
                        into.add(mid)
                        target = self._segment_of(mid, pop=False)
                        if target is not None and target is not seg and (
                                oldest is None or target.first_seq < oldest):
                            oldest = target.first_seq
                    seg.oldest_target = oldest
                off = end
            if problem is None:
                continue
            if last:
                log.warning("message store: %s in %s: truncating the torn tail (%d bytes)",
                            problem, name, len(data) - off)
                self.files.truncate(path, off)
                seg.size = off
                continue
            # A damaged segment in the middle: keep what could be read, move it aside.
            for qid, mid in seen_here:
                scan = per_queue[qid]
                found = scan.take(mid)
                if found is not None:
                    rec_off = found
                    rec = read_record(data, rec_off)
                    assert rec is not None
                    salvage[mid] = records.decode_publish(mid, data, rec[2], rec[3])
            log.error("message store: %s in middle segment %s: quarantining it; %d messages "
                      "read before the damage are kept", problem, name, len(salvage))
            self.segments.pop()
            self._firsts.pop()
            self._quarantine(path, problem)
            for scan in per_queue.values():
                scan.drop_segment(seg_index)
        self._firsts = [s.first_seq for s in self.segments]
        out: dict[int, Recovered] = {}
        for qid, scan in per_queue.items():
            rec_q = scan.finish(acked, self.segments)
            if rec_q.entries:
                out[qid] = rec_q
        live_salvage = [p for mid, p in sorted(salvage.items()) if mid not in acked]
        self._assigned_upto = self.seq
        if live_salvage:
            for qid, entries in self._rewrite(live_salvage, delivered).items():
                target = out.setdefault(qid, Recovered())
                target.merge(entries)
        self.recovered_delivered = {m for m in delivered if m not in acked}
        return out

    def _rewrite(self, pubs: list[records.Publish], delivered: set[int]) -> dict[int, Recovered]:
        """Write salvaged messages into a fresh segment (keeping their ids)."""
        first = self.seq + 1
        path = os.path.join(self.dir, segment_name(first))
        parts = [SEGMENT_HEADER]
        placed: dict[int, Recovered] = {}
        off = len(SEGMENT_HEADER)
        for p in pubs:
            flags = records.FLAG_DELIVERED if p.seq in delivered else 0
            rec = records.encode_publish(p.seq, p.queue_id, flags, p.expires_ms,
                                         _shortstr(p.exchange), _shortstr(p.routing_key),
                                         p.header, p.body)
            parts.append(rec)
            placed.setdefault(p.queue_id, Recovered()).append(entry(p.seq, off), len(p.body))
            off += len(rec)
        self.seq += 1  # reserve the segment's first seq (its name)
        self._assigned_upto = self.seq
        fd = self.files.open_append(path)
        try:
            self.files.write(fd, b"".join(parts))
            self.files.fsync(fd)
        finally:
            self.files.close(fd)
        self.files.fsync_dir(self.dir)
        seg = Segment(path, first, off)
        seg.live = len(pubs)
        # The salvaged ids are smaller than this segment's first seq, so their acks
        # and reads are routed here through _moved; it becomes the head.
        self.segments.append(seg)
        self._firsts.append(first)
        for p in pubs:
            self._moved[p.seq] = seg
        return placed

    # -- reading messages back ----------------------------------------------------
    def read_entries(self, entries: list[int]) -> list[records.Publish | None]:
        """The messages behind compact entries, read from their segments.

        Consecutive entries usually sit next to each other in one segment, so the
        file is read in large chunks rather than a record at a time.
        """
        out: list[records.Publish | None] = []
        chunk = b""
        chunk_seg: Segment | None = None
        chunk_off = 0
        for e in entries:
            mid, off = e >> 32, e & 0xFFFFFFFF
            seg = self._segment_of(mid, pop=False)
            if seg is None:
                out.append(None)
                continue
            rec = None
            if seg is chunk_seg and chunk_off <= off < chunk_off + len(chunk):
                rec = records.read_record(chunk, off - chunk_off)
            if rec is None:
                try:
                    chunk = os.pread(self._reader(seg), READ_CHUNK, off)
                except OSError as exc:
                    log.error("message store: cannot read message %d from %s: %s", mid, seg.path, exc)
                    out.append(None)
                    continue
                chunk_seg, chunk_off = seg, off
                rec = records.read_record(chunk, 0)
                if rec is None:  # a record bigger than the chunk
                    hdr = records.read_length(chunk, 0)
                    chunk = os.pread(self._reader(seg), hdr, off)
                    rec = records.read_record(chunk, 0)
            if rec is None or rec[0] != records.PUBLISH or rec[1] != mid:
                log.error("message store: message %d not found at %s:%d", mid, seg.path, off)
                out.append(None)
                continue
            out.append(records.decode_publish(mid, chunk, rec[2], rec[3]))
        return out

    def _reader(self, seg: Segment) -> int:
        fd = self._readers.get(seg.path)
        if fd is None:
            fd = self._readers[seg.path] = os.open(seg.path, os.O_RDONLY)
        return fd

    def remove_id(self, queue: Any, msg_id: int) -> None:
        """Like ``remove`` for a message that is only an entry (paged out)."""
        self._acks.append((queue.store_id, msg_id))
        seg = self._segment_of(msg_id)
        if seg is not None:
            seg.live -= 1
        self._schedule()

    def _quarantine(self, path: str, why: str) -> None:
        qdir = os.path.join(self.dir, "quarantine")
        os.makedirs(qdir, exist_ok=True)
        dest = os.path.join(qdir, os.path.basename(path))
        log.error("message store: quarantined %s (%s) -> %s", path, why, dest)
        os.replace(path, dest)

    def close(self) -> None:
        for fd in self._readers.values():
            os.close(fd)
        self._readers.clear()
        if self._fd is not None:
            self.files.close(self._fd)
            self._fd = None
        self._executor.shutdown(wait=True)

    async def drain(self) -> None:
        """Wait until every record handed to the log so far is written."""
        done = self.loop.create_future()
        self.when_durable(lambda ok: done.done() or done.set_result(ok))
        self._schedule()
        await done


def _rlen(rec: bytes | tuple[bytes, bytes]) -> int:
    return len(rec) if isinstance(rec, bytes) else len(rec[0]) + len(rec[1])


def _shortstr(s: str) -> bytes:
    raw = s.encode()
    return bytes((len(raw),)) + raw


def entry(msg_id: int, offset: int) -> int:
    """A paged-out message in one int: its id (which finds the segment) and offset."""
    return (msg_id << 32) | offset


class Recovered:
    """One queue's recovered messages: compact entries in order, and their body bytes."""

    __slots__ = ("bytes", "entries")

    def __init__(self) -> None:
        self.entries: list[int] = []
        self.bytes = 0

    def append(self, e: int, size: int) -> None:
        self.entries.append(e)
        self.bytes += size

    def merge(self, other: Recovered) -> None:
        self.entries = sorted(self.entries + other.entries)
        self.bytes += other.bytes


class _Scan:
    """Per-queue accumulator for recovery: parallel arrays, 18 bytes a message."""

    __slots__ = ("ids", "offs", "ordered", "segs", "sizes")

    def __init__(self) -> None:
        self.ids = array.array("Q")
        self.offs = array.array("L")
        self.sizes = array.array("L")
        self.segs = array.array("H")
        self.ordered = True

    def add(self, mid: int, off: int, size: int, seg: int) -> None:
        if self.ids and mid < self.ids[-1]:
            self.ordered = False
        self.ids.append(mid)
        self.offs.append(off)
        self.sizes.append(size)
        self.segs.append(seg)

    def take(self, mid: int) -> int | None:
        """Offset of ``mid`` if it was read (used when salvaging a damaged segment)."""
        for i in range(len(self.ids) - 1, -1, -1):
            if self.ids[i] == mid:
                return self.offs[i]
        return None

    def drop_segment(self, seg: int) -> None:
        keep = [i for i in range(len(self.ids)) if self.segs[i] != seg]
        if len(keep) == len(self.ids):
            return
        self.ids = array.array("Q", (self.ids[i] for i in keep))
        self.offs = array.array("L", (self.offs[i] for i in keep))
        self.sizes = array.array("L", (self.sizes[i] for i in keep))
        self.segs = array.array("H", (self.segs[i] for i in keep))

    def finish(self, acked: set[int], segments: list[Segment]) -> Recovered:
        out = Recovered()
        order = range(len(self.ids))
        if not self.ordered:
            order = sorted(order, key=self.ids.__getitem__)  # type: ignore[assignment]
        ids, offs, sizes, segs = self.ids, self.offs, self.sizes, self.segs
        for i in order:
            mid = ids[i]
            if mid in acked:
                continue
            out.entries.append((mid << 32) | offs[i])
            out.bytes += sizes[i]
            segments[segs[i]].live += 1
        return out
