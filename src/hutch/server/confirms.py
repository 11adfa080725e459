"""Publisher confirms of one channel (confirm.select): publish sequence numbers, which
of them still wait for the disk, and the coalesced basic.ack / basic.nack frames.

A publish the store holds a copy of is confirmed only once the store says it is on
disk; the others are settled at once.  Either way the frames go out when the
connection flushes (``emit``), so a burst of publishes gets one ``multiple=true`` ack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..broker.vhost import REJECTED, STORED, PublishResult
from ..protocol import fast

if TYPE_CHECKING:
    from .channel import Channel


class Confirms:
    __slots__ = ("_acks", "_ch", "_in_flight", "_nacks", "_store_failures", "_unsynced",
                 "_unsynced_nack", "pending", "publish_seq_no")

    def __init__(self, ch: Channel) -> None:
        self._ch = ch
        # The last publish's sequence number: the delivery tag its confirm carries.
        self.publish_seq_no = 0
        self._acks: list[int] = []
        self._nacks: list[int] = []
        self._in_flight: set[int] = set()  # confirm tags still waiting for the store
        # Stored publishes of this loop turn whose confirm waits for the disk: handed to
        # the store as one group (one callback per turn, not a closure per message).
        # _unsynced_nack: stored in one queue but refused by another (reject-publish).
        self._unsynced: list[int] = []
        self._unsynced_nack: list[int] = []
        self._store_failures = 0  # the store's failure count at the group's first add
        self.pending = False  # acks or nacks wait for the next flush

    @property
    def unconfirmed(self) -> int:
        """Publishes the store has yet to confirm (messages_unconfirmed)."""
        return len(self._in_flight)

    def published(self, result: PublishResult) -> None:
        """The next publish went through ``Vhost.publish``: give it its sequence number
        (the confirm tag) and ack it (nack if a queue refused it), at once or, if the
        store holds a copy, once that is on disk."""
        self.publish_seq_no += 1
        confirm_tag = self.publish_seq_no
        rejected = result & REJECTED
        if result & STORED:
            # The storage seam: confirm only once the store says it is on disk.
            self._in_flight.add(confirm_tag)
            if not self._unsynced and not self._unsynced_nack:
                broker = self._ch.conn.broker
                broker.loop.call_soon(self._wait_for_disk)
                self._store_failures = broker.store.failures
            (self._unsynced_nack if rejected else self._unsynced).append(confirm_tag)
            return
        self._ch.stat_confirm += 1
        (self._nacks if rejected else self._acks).append(confirm_tag)
        self._to_emit()

    def _wait_for_disk(self) -> None:
        """Hand this turn's stored publishes to the store as one group.  It runs after
        they were all added, so ``when_durable`` puts the callback on the batch that
        holds the last of them or a later one — the store writes batches in order, so
        none is confirmed before it is on disk."""
        acks, nacks = self._unsynced, self._unsynced_nack
        self._unsynced, self._unsynced_nack = [], []
        self._ch.conn.broker.store.when_durable(lambda ok: self._synced(acks, nacks, ok),
                                                since=self._store_failures)

    def _synced(self, acks: list[int], nacks: list[int], ok: bool) -> None:
        self._in_flight.difference_update(acks)
        self._in_flight.difference_update(nacks)
        self._ch.stat_confirm += len(acks) + len(nacks)
        (self._acks if ok else self._nacks).extend(acks)
        self._nacks.extend(nacks)
        self._to_emit()

    def _to_emit(self) -> None:
        """Acks or nacks are waiting: send them when the connection next flushes."""
        if not self.pending:
            self.pending = True
            self._ch.conn.broker.pump.conn_dirty(self._ch.conn)

    def emit(self) -> None:
        """Send pending basic.ack/nack to a confirming publisher, coalesced.

        One ``multiple=true`` ack covers a run of successes; if the batch holds a
        nack, or an older publish still waits for the disk, everything is sent
        one by one so no nacked or unsynced tag is ever covered.
        """
        self.pending = False
        acks, nacks = self._acks, self._nacks
        self._acks, self._nacks = [], []
        if not acks and not nacks:
            return
        conn = self._ch.conn
        n = self._ch.number
        if not nacks and not (self._in_flight and min(self._in_flight) < max(acks)):
            if len(acks) == 1:
                conn.write(fast.confirm_frame(n, acks[0], False))
            else:
                conn.write(fast.confirm_frame(n, max(acks), True))
            return
        frames = [fast.confirm_frame(n, t, False) for t in acks]
        frames += [fast.confirm_frame(n, t, False, nack=True) for t in nacks]
        conn.write_many(frames)
