"""Segment reclamation: deleting segments nobody needs, carrying references forward.

A segment whose messages are all gone is deleted, oldest first, because an ACK
or DELIVER record in a newer segment may still be needed to cancel (or mark) a
PUBLISH in an older one.  A segment that holds no live message but whose
references still point to an older segment gets those references copied into
the next batch ("carried forward"); once that batch is synced it goes too.
Separate from ``log.py`` (the write path) because it only runs after writes,
on the loop, and its one piece of disk work (reading a segment for its
references) is handed to the writer thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

from . import records
from .files import Files
from .recovery import SEGMENT_HEADER, Segment

log = logging.getLogger("hutch.store")

# A segment's ACK, DELIVER and RETURNED (queue id, message id) pairs.
Refs = tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int]]]


def references(files: Files, path: str, first_seq: int, moved: frozenset[int]) -> Refs | None:
    """On the writer thread: the ACK, DELIVER and RETURNED references of the segment at ``path``
    that may point to an older segment (a message id below ``first_seq``, or one of
    the ``moved`` ones), in file order; None if a record is damaged.  Picking them
    out here keeps a segment of acks from becoming millions of pairs on the loop."""
    data = files.read(path)
    off = len(SEGMENT_HEADER)
    acks: list[tuple[int, int]] = []
    delivers: list[tuple[int, int]] = []
    returned: list[tuple[int, int]] = []
    while off < len(data):
        try:
            rec = records.read_record(data, off)
        except records.CorruptRecordError:
            return None
        if rec is None:
            break
        rtype, _seq, start, end = rec
        if rtype == records.ACK or rtype == records.DELIVER:
            keep = acks if rtype == records.ACK else delivers
            keep.extend(p for p in records.decode_pairs(data, start)
                        if p[1] < first_seq or p[1] in moved)
        elif rtype == records.RETURNED:
            returned.extend((r[0], r[1]) for r in records.decode_returned(data, start)
                            if r[1] < first_seq or r[1] in moved)
        off = end
    return acks, delivers, returned


class ReclaimMixin:
    """The reclamation half of ``MessageLog`` (which provides these attributes)."""

    loop: asyncio.AbstractEventLoop
    files: Any
    segments: list[Segment]
    _firsts: list[int]
    _moved: dict[int, Segment]
    _readers: dict[str, int]
    _executor: concurrent.futures.ThreadPoolExecutor
    _acks: list[tuple[int, int]]
    _delivers: list[tuple[int, int]]
    _returns: list[records.Counts]
    counts: dict[int, tuple[int, int]]
    _carry: Segment | None
    _carrying: bool
    _scan: asyncio.Future[Refs | None] | None
    _pending: Any  # the batch being gathered (log._Batch)

    def _segment_of(self, msg_id: int, pop: bool = True) -> Segment | None:
        raise NotImplementedError

    def _note_target(self, seg: Segment) -> None:
        raise NotImplementedError

    def _schedule(self) -> None:
        raise NotImplementedError

    def _keep_until_settled(self, seg: Segment) -> None:
        """``seg`` was just emptied by an ACK still waiting in the pending batch.  It must
        not be reclaimed before that batch is on disk: the message may have moved (its
        dead-letter copy, a fired delayed message's copies) in the same batch, and a
        crash with the old segment gone and the batch unwritten would lose it.  A batch
        that fails puts its ACKs into the next one: so does this hold."""
        seg.unsettled += 1

        def settled(ok: bool) -> None:
            if ok:
                seg.unsettled -= 1
            else:
                self._pending.callbacks.append(settled)

        self._pending.callbacks.append(settled)

    def _reclaim(self) -> None:
        """Delete every segment that holds no live message and whose ACK/DELIVER/RETURNED
        records refer to no older segment still on disk (never the head).

        So one message nobody consumes pins its own segment, not the log after it.
        """
        i = 0
        while i < len(self.segments) - 1:
            seg = self.segments[i]
            if seg.live > 0 or seg.pinned or seg.reads or seg.unsettled:
                i += 1
                continue
            if not self._targets_gone(seg, i):
                if not self._carrying:
                    self._carry_forward(seg)
                i += 1
                continue
            fd = self._readers.pop(seg.path, None)
            if fd is not None:
                self.files.close(fd)
            try:
                self.files.remove(seg.path)
            except OSError as exc:
                # Keep it in the list: forgetting a file that is still on disk would
                # let a restart read its PUBLISH records without the ACKs that
                # cancel them.  The next reclaim tries again.
                log.warning("could not delete segment %s (will retry): %s", seg.path, exc)
                i += 1
                continue
            del self.segments[i]
            del self._firsts[i]

    def _carry_forward(self, seg: Segment) -> None:
        """``seg`` holds no live message but some of its ACK/DELIVER/RETURNED records may refer
        to older segments still on disk.  Copy just those references into the next
        batch; once it is synced ``seg`` can go.  Without this, acks that crossed a
        segment boundary would chain every later segment to one long-lived message.

        Reading a segment (up to its whole size, 64 MiB by default) would stall the
        loop, so the writer thread reads it and picks out the candidates; which of
        them still matter is decided back on the loop (``_carry_scanned``), where the
        segment list lives.  Meanwhile ``seg`` is pinned: neither deleted nor read twice.
        """
        seg.pinned = True
        self._carrying = True
        # Salvaged messages live outside their id's segment: their references are
        # candidates whatever their id (a copy: the thread must not see the dict change).
        moved = frozenset(self._moved) if self._moved else frozenset()
        scan = self._scan = self.loop.run_in_executor(
            self._executor, references, self.files, seg.path, seg.first_seq, moved)
        scan.add_done_callback(lambda f: self._carry_scanned(seg, f))

    def _carry_scanned(self, seg: Segment, scan: asyncio.Future[Refs | None]) -> None:
        if scan is not self._scan:
            return  # the log was closed meanwhile
        self._scan = None
        seg.pinned = False
        self._carrying = False
        exc = scan.exception()
        if exc is not None:
            # It stays, unpinned: the next reclaim (after the next write) tries again.
            log.warning("could not read %s to reclaim it: %s", seg.path, exc)
            return
        refs = scan.result()
        if refs is None:
            return  # a damaged record: it stays (read again at the next reclaim), as before
        acks: list[tuple[int, int]] = []
        delivers: list[tuple[int, int]] = []
        for keep, pairs in ((acks, refs[0]), (delivers, refs[1])):
            for qid, mid in pairs:
                target = self._segment_of(mid, pop=False)
                if target is not None and target.first_seq < seg.first_seq:
                    keep.append((qid, mid))
                    self._note_target(target)
        # A RETURNED reference is carried as the message's counts now (newer than the
        # record read, if it came back again since); a message gone since has none.
        returns: list[records.Counts] = []
        for qid, mid in dict.fromkeys(refs[2]):
            counts = self.counts.get(mid)
            target = self._segment_of(mid, pop=False)
            if counts is not None and target is not None and target.first_seq < seg.first_seq:
                returns.append((qid, mid, min(counts[0], 0xFFFFFFFF), min(counts[1], 0xFFFFFFFF)))
                self._note_target(target)
        if not acks and not delivers and not returns:
            # Its targets were deleted since (an empty carry would also never be
            # written: an empty batch is not flushed): it can go now.
            seg.oldest_target = None
            self._reclaim()
            return
        self._acks.extend(acks)
        self._delivers.extend(delivers)
        self._returns.extend(returns)
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
