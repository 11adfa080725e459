"""Firing delayed messages through the log, and settling torn fires at recovery.

A persistent message waiting in a durable x-delayed-message exchange is a PUBLISH
under the exchange's store id, its ``expires_ms`` the due time.  Firing it must
neither lose it nor duplicate it, whatever byte a power cut stops the log at.  So
the fire is one group of records in one batch (a batch is one write into one
segment, so a crash leaves a prefix of it):

    FIRED(store_id, msg_id, dest seqs)  PUBLISH dest 1 ... PUBLISH dest n  ...  ACK

``begin_fire`` reserves FIRED's seq and its place in the pending batch; every
``add`` until ``end_fire`` is a copy the fire made (the fire is synchronous on the
loop, so nothing else adds in between), and ``end_fire`` writes the FIRED record
into its place naming exactly those seqs.  The caller then ``remove``s the delayed
message (the ACK, at the batch's end).

Recovery (``FiredScan``): FIRED precedes its copies, so the scan notes the seqs it
waits for and which of them it then meets.  All met: the fire happened, FIRED acts
as the ACK.  Some missing: it did not; the copies that made it are dropped and the
delayed message stays, to fire again.  Either way the ACKs that settle it are
written at once (``settle``), and ``seq`` is moved past every seq a FIRED names, so a
missing copy's seq is never handed out again (which would make a torn fire look
complete at a later recovery).

A failed batch (ENOSPC/EIO) is cut off whole, the FIRED and the copies with it.  The
caller (``DelayStore``) enqueues the copies only once the batch is durable, so no
consumer ever sees a copy that could vanish; on failure it takes the delayed
message's ACK back (``unremove``) and fires it again once the disk takes writes.
"""

from __future__ import annotations

from typing import Any

from . import records


class FireMixin:
    """The firing half of ``MessageLog`` (which provides the attributes used here)."""

    seq: int
    _pending: Any
    _acks: list[tuple[int, int]]
    _assigned_upto: int
    _pending_dead: int
    _fire: tuple[int, int, int, int, Any] | None = None

    def _schedule(self) -> None:
        raise NotImplementedError

    def _segment_of(self, msg_id: int, pop: bool = True) -> Any:
        raise NotImplementedError

    def _note_target(self, seg: Any) -> None:
        raise NotImplementedError

    def begin_fire(self, store_id: int, msg_id: int) -> None:
        """Delayed message ``msg_id`` of the exchange with ``store_id`` fires now:
        the records added until ``end_fire`` are its copies."""
        self.seq += 1
        batch = self._pending
        slot = len(batch.data)
        # A placeholder at FIRED's place, before the copies: ``msgs`` stays parallel to
        # the records (None: not a message).
        batch.data.append(b"")
        batch.msgs.append(None)
        self._fire = (self.seq, store_id, msg_id, slot, batch)

    def end_fire(self) -> None:
        fire = self._fire
        if fire is None:
            return
        self._fire = None
        seq, store_id, msg_id, slot, batch = fire
        dests = list(range(seq + 1, self.seq + 1))
        batch.data[slot] = records.encode_fired(seq, [(store_id, msg_id, dests)])
        self._schedule()

    def unremove(self, queue: Any, msg: Any, msg_id: int) -> bool:
        """Take back ``remove(queue, msg)`` of message ``msg_id`` while its ACK is still
        waiting to be written (its fire's batch failed: the message stays, to fire
        again).  False if the ACK is already written."""
        try:
            self._acks.remove((queue.store_id, msg_id))
        except ValueError:
            return False
        msg.msg_id = msg_id
        if msg_id > self._assigned_upto:
            self._pending_dead -= 1
        else:
            seg = self._segment_of(msg_id, pop=False)
            if seg is not None:
                seg.live += 1
        return True

    def settle_fired(self, acks: list[tuple[int, int]]) -> None:
        """After recovery: write the ACKs that settle torn fires (for messages that
        recovery already left out, so no segment's live count changes)."""
        for qid, mid in acks:
            self._acks.append((qid, mid))
            seg = self._segment_of(mid, pop=False)
            if seg is not None:
                self._note_target(seg)
        if acks:
            self._schedule()


class FiredScan:
    """Recovery's view of FIRED records, fed in file order."""

    __slots__ = ("fires", "met", "wanted")

    def __init__(self) -> None:
        self.fires: list[records.Fired] = []
        self.wanted: set[int] = set()  # dest seqs named by a FIRED, not met yet
        self.met: dict[int, int] = {}  # dest seq -> its queue id

    def fired(self, entries: list[records.Fired]) -> None:
        for e in entries:
            self.fires.append(e)
            self.wanted.update(e[2])

    def published(self, seq: int, queue_id: int) -> None:
        """Called for a PUBLISH only while ``wanted`` is not empty."""
        if seq in self.wanted:
            self.wanted.discard(seq)
            self.met[seq] = queue_id

    def resolve(self, acked: set[int]) -> tuple[list[tuple[int, int]], int]:
        """Add to ``acked`` what the FIRED records settle; returns the ACKs to write
        and the highest seq any FIRED names."""
        out: list[tuple[int, int]] = []
        top = 0
        for store_id, msg_id, dests in self.fires:
            if dests:
                top = max(top, dests[-1])
            if all(d in self.met for d in dests):
                if msg_id not in acked:  # torn between its copies and its ACK
                    acked.add(msg_id)
                    out.append((store_id, msg_id))
            else:
                for d in dests:
                    if d in self.met and d not in acked:
                        acked.add(d)
                        out.append((self.met[d], d))
        return out, top
