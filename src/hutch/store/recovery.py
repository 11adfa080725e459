"""Recovery: rebuilding the live messages of every queue from the segment files.

Separate from ``log.py`` (writing, reading, reclaiming) because it runs once, at
start, and has its own concerns: checking every record, cutting torn tails,
quarantining damaged segments and salvaging what they still hold.  Only ids and
offsets are kept, not bodies, so a million messages cost tens of megabytes.
"""

from __future__ import annotations

import array
import logging
import os
import struct
from collections.abc import Callable, Iterable
from typing import Any

from ..protocol.fast import shortstr
from . import records, snapshot
from .fired import FiredScan

log = logging.getLogger("hutch.store")

MAGIC = b"HUTCHLOG"
VERSION = 1
_seg_header = struct.Struct(">8sI")
SEGMENT_HEADER = _seg_header.pack(MAGIC, VERSION)


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}.seg"


class Segment:
    __slots__ = ("first_seq", "live", "oldest_target", "path", "pinned", "reads", "ready", "size",
                 "unsettled")

    def __init__(self, path: str, first_seq: int, size: int) -> None:
        self.path = path
        self.first_seq = first_seq
        self.size = size  # bytes written (or handed to the writer)
        self.live = 0  # PUBLISH records in it whose message is still in a queue
        # first_seq of the oldest *other* segment one of its ACK/DELIVER/RETURNED records
        # refers to (None: only to itself).  While that segment exists, this one
        # must stay, or a restart would bring an acked message back.
        self.oldest_target: int | None = None
        self.pinned = False  # its references are being carried forward: keep it for now
        # ACKs that emptied it and are not on disk yet (MessageLog.remove): it stays, as
        # the message may have moved (dead-lettered, a delayed one fired) in that batch.
        self.unsettled = 0
        self.reads = 0  # reads under way on the reader thread: keep its file (and fd) open
        # Its file exists with a synced header and name.  False for a new head
        # until the writer thread has made it (again, after a failed attempt).
        self.ready = True

    def __repr__(self) -> str:
        return f"<Segment {os.path.basename(self.path)} live={self.live} size={self.size}>"


class RecoveryMixin:
    """The recovery half of ``MessageLog`` (which provides the attributes used here)."""

    dir: str
    files: Any
    seq: int
    segments: list[Segment]
    _firsts: list[int]
    _moved: dict[int, Segment]
    _assigned_upto: int
    recovered_delivered: set[int]
    counts: dict[int, tuple[int, int]]
    recovered_from = ""
    # ACKs that settle torn fires of delayed messages (store/fired.py), to be written.
    fired_acks: list[tuple[int, int]] = []

    def _segment_of(self, msg_id: int, pop: bool = True) -> Segment | None:
        raise NotImplementedError

    def recover(self, classify: dict[int, Callable[[bytes], int]] | None = None
                ) -> dict[int, Recovered]:
        """Read every segment and return, per queue id, its live messages as compact
        entries in publish order (see ``entry``).  Torn tails are cut off, corrupt
        middle segments quarantined (their readable messages rewritten into a fresh
        segment); afterwards the log is ready for appending.

        ``classify``: per queue id of a priority queue, the function that gives a
        message's level from its content header; those queues' ``Recovered`` carry
        each entry's level (``levels``) and the body bytes per level.

        Only offsets are kept, not bodies, so recovering a million messages costs
        tens of megabytes; ``read_entries`` fetches bodies when consumers get there.
        """
        names = sorted(n for n in self.files.listdir(self.dir) if n.endswith(".seg"))
        classify = classify or {}
        snap = snapshot.take(self.dir, self.files)
        if snap is not None:
            restored = self._from_snapshot(snap, names, classify)
            if restored is not None:
                self.recovered_from = "shutdown snapshot"
                return restored
        self.recovered_from = "log scan"
        per_queue: dict[int, _Scan] = {}
        acked: set[int] = set()
        delivered: set[int] = set()
        counts: dict[int, tuple[int, int]] = {}  # RETURNED: the newest counts win
        salvage: dict[int, records.Publish] = {}
        fired = FiredScan()  # FIRED records: delayed messages' fires (store/fired.py)
        damaged: list[tuple[str, str]] = []  # moved aside once their salvage is durable
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
                        scan = per_queue[qid] = _Scan(classify.get(qid))
                    scan.add(seq, off, body_size, seg_index)
                    if scan.classify is not None:
                        scan.levels.append(scan.classify(records.publish_header(data, start)))
                    seen_here.append((qid, seq))
                    if fired.wanted:
                        fired.published(seq, qid)
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
                elif rtype == records.FIRED:
                    fired.fired(records.decode_fired(data, start))
                elif rtype == records.RETURNED:
                    oldest = seg.oldest_target
                    for _qid, mid, dcount, acount in records.decode_returned(data, start):
                        # Records are met in the order they were written (carried
                        # forward and salvaged copies hold the counts of their time), and
                        # counts may go down: a held message's record says "if its holder
                        # is lost", a nack after it the real counts (redelivery.held).
                        counts[mid] = (dcount, acount)
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
            damaged.append((path, problem))
            for scan in per_queue.values():
                scan.drop_segment(seg_index)
        self._firsts = [s.first_seq for s in self.segments]
        if fired.fires:
            self.fired_acks, top = fired.resolve(acked)
            self.seq = max(self.seq, top)  # a torn fire's missing seqs are never reused
        out: dict[int, Recovered] = {}
        for qid, scan in per_queue.items():
            rec_q = scan.finish(acked, self.segments)
            if rec_q.entries:
                out[qid] = rec_q
        live_salvage = [p for mid, p in sorted(salvage.items()) if mid not in acked]
        if live_salvage:
            # A start that failed after salvaging but before quarantining leaves both
            # the damaged segment and the salvage segment: salvage only what no
            # surviving segment holds, so nothing comes back twice.
            present = {mid for scan in per_queue.values() for mid in scan.ids}
            live_salvage = [p for p in live_salvage if p.seq not in present]
        self._assigned_upto = self.seq
        if counts:
            live = {mid for scan in per_queue.values() for mid in scan.ids}
            live.update(p.seq for p in live_salvage)
            self.counts = {m: c for m, c in counts.items() if m in live and m not in acked}
        if live_salvage:
            for qid, entries in self._rewrite(live_salvage, delivered, classify).items():
                out.setdefault(qid, Recovered()).merge(entries)
        # Only now, with what they still held durable elsewhere: a fault before this
        # point leaves them in place for the next start to salvage again.  "Elsewhere"
        # may be an earlier start's salvage segment whose fsync failed but whose bytes
        # were read back from the page cache: sync every segment before relying on it.
        if damaged:
            for seg in self.segments:
                fd = self.files.open_append(seg.path)
                try:
                    self.files.fsync(fd)
                finally:
                    self.files.close(fd)
            self.files.fsync_dir(self.dir)
        for path, problem in damaged:
            self._quarantine(path, problem)
        self.recovered_delivered = {m for m in delivered if m not in acked}
        return out

    def _from_snapshot(self, snap: snapshot.Snapshot, names: list[str],
                       classify: dict[int, Callable[[bytes], int]]) -> dict[int, Recovered] | None:
        """The state a clean stop wrote down, if it still describes the files on disk."""
        expected = [segment_name(s.first_seq) for s in snap.segments]
        why = None
        if any(q.runs is None and q.queue_id in classify for q in snap.queues):
            # Written before the queue's priorities were honoured (or by an older
            # Hutch): the scan reads each message's priority from its header.
            why = "priority queue without levels"
        elif names != expected:
            why = "segment files differ"
        elif any(os.path.getsize(os.path.join(self.dir, n)) != s.size
                 for n, s in zip(names, snap.segments, strict=True)):
            why = "segment sizes differ"
        elif sum(s.live for s in snap.segments) != sum(len(q.entries) for q in snap.queues):
            why = "live counts do not add up"
        if why is not None:
            log.warning("message store: shutdown snapshot does not match the log (%s); scanning", why)
            return None
        for s, name in zip(snap.segments, names, strict=True):
            seg = Segment(os.path.join(self.dir, name), s.first_seq, s.size)
            seg.live = s.live
            seg.oldest_target = s.oldest_target
            self.segments.append(seg)
        self._firsts = [s.first_seq for s in self.segments]
        self.seq = self._assigned_upto = snap.seq
        self.recovered_delivered = snap.delivered
        self.counts = snap.counts
        out: dict[int, Recovered] = {}
        for q in snap.queues:
            rec = out[q.queue_id] = Recovered()
            rec.entries = q.entries
            rec.bytes = q.body_bytes
            if q.runs is not None and q.queue_id in classify:
                rec.levels = array.array("B")
                rec.level_bytes = {}
                for level, count, size in q.runs:
                    rec.levels.extend(array.array("B", (level,)) * count)
                    rec.level_bytes[level] = rec.level_bytes.get(level, 0) + size
        return out

    def _rewrite(self, pubs: list[records.Publish], delivered: set[int],
                 classify: dict[int, Callable[[bytes], int]]) -> dict[int, Recovered]:
        """Write salvaged messages into a fresh segment (keeping their ids).

        Named past every record *and* every segment: an earlier start's salvage
        segment is named after the highest seq of its time and holds only smaller
        ids, so ``seq + 1`` alone could name this one like it (and append to it)."""
        first = max(self.seq, self._firsts[-1] if self._firsts else 0) + 1
        path = os.path.join(self.dir, segment_name(first))
        parts = [SEGMENT_HEADER]
        placed: dict[int, Recovered] = {}
        off = len(SEGMENT_HEADER)
        for p in pubs:
            flags = records.FLAG_DELIVERED if p.seq in delivered else 0
            rec = records.encode_publish(p.seq, p.queue_id, flags, p.expires_ms,
                                         shortstr(p.exchange), shortstr(p.routing_key),
                                         p.header, p.body)
            parts.append(rec)
            level_of = classify.get(p.queue_id)
            placed.setdefault(p.queue_id, Recovered()).append(
                entry(p.seq, off), len(p.body), None if level_of is None else level_of(p.header))
            off += len(rec)
        self.seq += 1  # reserve the segment's first seq (its name)
        counted = [(p.queue_id, p.seq, *self.counts[p.seq]) for p in pubs if p.seq in self.counts]
        if counted:
            # Their return counts go along, in a RETURNED record under the reserved seq.
            rec = records.encode_returned(self.seq, counted)
            parts.append(rec)
            off += len(rec)
        self._assigned_upto = self.seq
        fd = self.files.open_new(path)
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


    def _quarantine(self, path: str, why: str) -> None:
        log.error("message store: quarantining %s (%s) into %s/quarantine", path, why, self.dir)
        self.files.move_aside(path, os.path.join(self.dir, "quarantine"))


def entry(msg_id: int, offset: int) -> int:
    """A paged-out message in one int: its id (which finds the segment) and offset."""
    return (msg_id << 32) | offset


class Recovered:
    """One queue's recovered messages: compact entries in order, and their body bytes;
    for a priority queue also each entry's level (parallel to ``entries``) and the
    body bytes per level."""

    __slots__ = ("bytes", "entries", "level_bytes", "levels")

    def __init__(self) -> None:
        self.entries: list[int] = []
        self.bytes = 0
        self.levels: array.array[int] | None = None
        self.level_bytes: dict[int, int] | None = None

    def append(self, e: int, size: int, level: int | None = None) -> None:
        self.entries.append(e)
        self.bytes += size
        if level is not None:
            self._count_level(level, size)

    def _count_level(self, level: int, size: int) -> None:
        if self.levels is None or self.level_bytes is None:
            self.levels = array.array("B")
            self.level_bytes = {}
        self.levels.append(level)
        self.level_bytes[level] = self.level_bytes.get(level, 0) + size

    def merge(self, other: Recovered) -> None:
        if self.levels is None and other.levels is None:
            self.entries = sorted(self.entries + other.entries)
        else:
            pairs = sorted(zip(self.entries + other.entries,
                               list(self.levels or ()) + list(other.levels or ()), strict=True))
            self.entries = [e for e, _ in pairs]
            self.levels = array.array("B", (lvl for _, lvl in pairs))
            sizes = dict(self.level_bytes or {})
            for lvl, size in (other.level_bytes or {}).items():
                sizes[lvl] = sizes.get(lvl, 0) + size
            self.level_bytes = sizes
        self.bytes += other.bytes


class _Scan:
    """Per-queue accumulator for recovery: parallel arrays, 18 bytes a message."""

    __slots__ = ("classify", "ids", "levels", "offs", "ordered", "segs", "sizes")

    def __init__(self, classify: Callable[[bytes], int] | None = None) -> None:
        # A priority queue's: each message's level, from its header (one byte more).
        self.classify = classify
        self.levels = array.array("B")
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
        if self.classify is not None:
            self.levels = array.array("B", (self.levels[i] for i in keep))

    def finish(self, acked: set[int], segments: list[Segment]) -> Recovered:
        out = Recovered()
        order = range(len(self.ids))
        if not self.ordered:
            order = sorted(order, key=self.ids.__getitem__)  # type: ignore[assignment]
        ids, offs, sizes, segs = self.ids, self.offs, self.sizes, self.segs
        if self.classify is not None:
            return self._finish_levels(order, acked, segments)
        for i in order:
            mid = ids[i]
            if mid in acked:
                continue
            out.entries.append((mid << 32) | offs[i])
            out.bytes += sizes[i]
            segments[segs[i]].live += 1
        return out

    def _finish_levels(self, order: Iterable[int], acked: set[int], segments: list[Segment]) -> Recovered:
        """``finish`` for a priority queue: each entry's level and the bytes per level too
        (a loop of its own, so other queues' recoveries pay nothing for it)."""
        out = Recovered()
        out.levels, out.level_bytes = array.array("B"), {}
        ids, offs, sizes, segs, levels = self.ids, self.offs, self.sizes, self.segs, self.levels
        for i in order:
            mid = ids[i]
            if mid in acked:
                continue
            out.entries.append((mid << 32) | offs[i])
            out.bytes += sizes[i]
            segments[segs[i]].live += 1
            out._count_level(levels[i], sizes[i])
        return out
