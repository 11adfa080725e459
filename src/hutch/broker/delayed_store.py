"""The messages an ``x-delayed-message`` exchange holds until they are due.

One ``DelayStore`` per delayed exchange.  Due times are wall-clock milliseconds (as
the plugin's erlang:system_time), so that they keep their meaning across a restart;
timers run on the loop's monotonic clock and, when one goes off, the wall clock
decides: a message is never fired before its due time (a timer that woke early, or
a clock that stepped back, just re-arms).

Two heaps of plain ints, so a waiting message costs one int, not an object:

* ``_mem``: messages whose body is in memory, ``(due_ms << 40) | seq``, the message
  itself in ``_msgs[seq]``; equal due times fire in publish order.  One timer, armed
  for the soonest, fires them (at most ``FIRE_BATCH`` per loop turn, so a million
  due at once do not stall the loop).
* ``_paged``: logged messages due later than ``PAGE_AFTER_MS`` from now, their body
  only in the message log: ``(due_ms << 96) | entry`` (``entry`` = log id << 32 |
  offset, store/recovery.entry), about 55 bytes each.  A second timer reads them
  back on the log's reader thread ``READ_AHEAD_MS`` before they are due, a chunk at
  a time, into ``_mem``.

A logged message waits in ``_unwritten`` until its record is written (its offset is
only known then), and goes to ``_paged`` at the ``when_durable`` of its batch; if
the write failed it stays in memory as a transient one (its publisher got a nack).
Bodies held in memory count towards the memory alarm (``Node.account``), as queued
bodies do.

Durability.  A durable delayed exchange on a node with a message log gets a store
id (like a durable queue's; ``hutch.exchange_ids`` in the definitions, new for each
incarnation), and a persistent message it delays is written to the log as a PUBLISH
under that id with its due time in ``expires_ms``: the publisher's confirm waits
for that record's fsync.  Firing it goes through ``MessageLog.begin_fire`` /
``end_fire`` (store/fired.py), so its copies in durable queues and the end of the
delayed message are one all-or-nothing group even across a power cut.  At start the
node hands back the exchange's live entries (``restore``); their records are read
back, a chunk at a time, for the due times.  The clean-stop snapshot lists them
like a queue's entries.  Transient messages, and any message of a non-durable
exchange, stay in memory.
"""

from __future__ import annotations

import heapq
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from ..errors import ChannelError
from ..protocol.properties import peek
from .expiration import parse_expiration
from .message import Message

if TYPE_CHECKING:
    from .exchanges.delayed import DelayedExchange

log = logging.getLogger("hutch.delayed")

SEQ_BITS = 40
SEQ_MASK = (1 << SEQ_BITS) - 1
# An entry is log id << 32 | offset, and a log id is a 63-bit seq: 95 bits, so the due
# time goes above 96 (a 64-bit field would cut the id once the log passed 2**32 records).
ENTRY_BITS = 96
ENTRY_MASK = (1 << ENTRY_BITS) - 1
FIRE_BATCH = 2000  # messages fired per loop turn at most
PAGE_AFTER_MS = 5000  # a logged message due later than this keeps no body in memory
READ_AHEAD_MS = 2000  # paged messages are read back this long before they are due
READ_CHUNK = 4096  # entries per read on the reader thread
RETRY_READ_S = 1.0  # after a failed read
RETRY_FIRE_MS = 200  # a fire the disk refused is tried again this much later
# A logged message's fire batch is written this long before it is due, so the fsync
# its copies wait for is over by then (measured on this VM: ~5 ms; see _fire).
FIRE_LEAD_MS = 20


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def fired_expiry(header: bytes) -> float | None:
    """A per-message TTL starts in the queue, after the delay: its deadline now."""
    expiration = peek(header[12:])[1]
    if expiration is None:
        return None
    try:
        return time.monotonic() + parse_expiration(expiration) / 1000.0
    except ChannelError:
        return None


class Delayed:
    """One waiting message (the routing key and exchange it was published with)."""

    __slots__ = ("body", "exchange", "header", "msg_id", "persistent", "routing_key", "store_pos")

    expires_at = None  # read by MessageLog.add (the due time is passed on its own)

    def __init__(self, exchange: str, routing_key: str, header: bytes, body: bytes,
                 persistent: bool) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.header = header
        self.body = body
        self.persistent = persistent
        self.msg_id: int | None = None  # its PUBLISH record's seq, if logged
        self.store_pos: int | None = None  # that record's offset, once written


class DelayStore:
    def __init__(self, exchange: DelayedExchange) -> None:
        self.exchange = exchange
        vhost = exchange.vhost
        self.vhost = vhost
        self.node = vhost.broker
        self.loop = self.node.loop
        self._mem: list[int] = []
        self._msgs: dict[int, Delayed] = {}
        self._seq = 0
        self._paged: list[int] = []
        self._unwritten: list[tuple[int, Delayed]] = []  # (due, message) till written
        self._reading: list[int] = []  # paged ints being read back
        self._timer: Any = None  # asyncio.TimerHandle of the next fire
        self._timer_due = 0  # the due time (ms) it is armed for
        self._read_timer: Any = None
        self._read_due = 0
        # Fires written ahead whose copies wait for their due time (_fire_written):
        # (due << SEQ_BITS | n) -> copies; one timer for the soonest.
        self._handing: dict[int, list[tuple[Any, Message]]] = {}
        self._hand_timer: Any = None
        self._hand_due = 0  # the due time (ms) it is armed for
        self._hand_seq = 0
        self.closed = False
        self.halted = False  # the node is stopping (halt)
        self.fired = 0  # messages fired so far (for tests and stats)
        # The MessageStore's view of this store as a queue: its id in the log (None:
        # nothing is logged) and the definitions version that must be durable before
        # a confirm (the exchange's declaration).
        self.store_id: int | None = None
        self.defs_version = 0

    def attach(self, store_id: int | None, defs_version: int = 0) -> None:
        """Log persistent messages under ``store_id`` (a new random one if None)."""
        self.store_id = store_id or int.from_bytes(os.urandom(8), "big") >> 1
        self.defs_version = defs_version

    @property
    def count(self) -> int:
        """messages_delayed."""
        return len(self._msgs) + len(self._paged) + len(self._unwritten) + len(self._reading)

    # -- adding --------------------------------------------------------------------
    def add(self, exchange: str, routing_key: str, header: bytes, body: bytes,
            persistent: bool, delay_ms: int) -> bool:
        """Hold a message for ``delay_ms``; True if it went to the log (the publisher's
        confirm waits for the disk)."""
        due = now_ms() + delay_ms
        msg = Delayed(exchange, routing_key, header, body, persistent)
        store = self.node.store
        if not persistent or self.store_id is None or store is None:
            self._push(msg, due)
            return False
        store.add(self, msg, due)
        if delay_ms <= PAGE_AFTER_MS:
            self._push(msg, due)
        else:
            if not self._unwritten:
                store.when_durable(self._written)
            self._unwritten.append((due, msg))
            self.node.account(len(body))
        return True

    def _push(self, msg: Delayed, due: int) -> None:
        self._seq += 1
        seq = self._seq
        self._msgs[seq] = msg
        self.node.account(len(msg.body))
        heapq.heappush(self._mem, (due << SEQ_BITS) | seq)
        if self._timer is None or due < self._timer_due:
            self._arm(due)

    def _written(self, _ok: bool) -> None:
        """The batch holding ``_unwritten`` is done: written records page out."""
        batch, self._unwritten = self._unwritten, []
        if self.closed:
            return
        for due, msg in batch:
            if msg.msg_id is not None and msg.store_pos is None:
                self._unwritten.append((due, msg))  # added after the callback: a later batch
                continue
            self.node.account(-len(msg.body))
            if msg.msg_id is not None and msg.store_pos is not None:
                self._page((due << ENTRY_BITS) | (msg.msg_id << 32) | msg.store_pos)
            else:  # the write failed: a transient message now (its publish was nacked)
                self._push(msg, due)
        if self._unwritten:
            self.node.store.when_durable(self._written)

    def _page(self, item: int) -> None:
        heapq.heappush(self._paged, item)
        due = item >> ENTRY_BITS
        if self._read_timer is None or due < self._read_due:
            self._arm_read(due)

    # -- firing --------------------------------------------------------------------
    def _at(self, when_ms: int, callback: Any) -> Any:
        """A loop timer for a wall-clock time in ms (at once if it has passed)."""
        return self.loop.call_at(self.loop.time() + max(0, when_ms - now_ms()) / 1000.0,
                                 callback)

    def _arm(self, due: int, lead: int = FIRE_LEAD_MS) -> None:
        """The fire timer, for ``due``.  Woken ``lead`` ms early: a logged message's fire
        batch is written then, so that its copies can be handed over at the due time
        itself (see _fire)."""
        if self.halted:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = self._at(due - lead, self._fire)

    def _fire(self) -> None:
        """Fire what is due, and start the fire of logged messages due within
        ``FIRE_LEAD_MS``: their copies must be on disk before any queue gets them (an
        fsync, a few ms), so the batch is written ahead and the copies wait for the due
        time (``_hand_over``).  Nothing is delivered early: a transient message is
        routed at its due time, and a crash between the write and the due time cannot
        show a copy early either, as a restart takes longer than the lead."""
        self._timer = None
        if self.halted:
            return
        heap = self._mem
        now = now_ms()
        horizon = now + FIRE_LEAD_MS
        fired = 0
        while heap and heap[0] >> SEQ_BITS <= horizon and fired < FIRE_BATCH:
            item = heap[0]
            due = item >> SEQ_BITS
            msg = self._msgs.get(item & SEQ_MASK)
            if msg is None:
                heapq.heappop(heap)
                continue
            if due > now and msg.msg_id is None:
                break  # a transient one is routed at its due time, not ahead
            heapq.heappop(heap)
            del self._msgs[item & SEQ_MASK]
            fired += 1
            self.node.account(-len(msg.body))
            self._fire_one(msg, due)
        self.fired += fired
        if heap:
            top = heap[0] >> SEQ_BITS
            if fired >= FIRE_BATCH and top <= horizon:  # more due than one turn's share
                self._timer_due = top
                self._timer = self.loop.call_soon(self._fire)
            elif top <= horizon:  # a transient one due within the lead: at its time
                self._arm(top, lead=0)
            else:
                self._arm(top)

    def _fire_one(self, msg: Delayed, due: int) -> None:
        """Route a due message and give each queue it reaches a copy.  A logged one's
        copies in durable queues are written first, with the FIRED record and its ACK
        in one batch (store/fired.py), and handed to their queues only once that batch
        is durable: a consumer never sees a copy a crash could take back."""
        queues = self.vhost.route_fired(self.exchange, msg.exchange, msg.routing_key,
                                        msg.header, msg.body, msg.persistent)
        expires_at = fired_expiry(msg.header)
        copies = [(q, Message(msg.exchange, msg.routing_key, msg.header, msg.body,
                              msg.persistent, expires_at)) for q in queues]
        msg_id = msg.msg_id
        if msg_id is None:
            self._enqueue(copies)
            return
        for q, copy in copies:
            q.apply_ttl(copy)  # in the copy's record too (a review find: lost at restart)
        store = self.node.store
        store.begin_fire(self.store_id, msg_id)
        try:
            for q, copy in copies:
                if q.durable and copy.persistent:  # what PagedStore.push would log
                    store.add(q, copy)
        finally:
            store.end_fire()
            store.remove(self, msg)
        store.when_durable(lambda ok: self._fire_written(ok, msg, msg_id, due, copies))

    def _fire_written(self, ok: bool, msg: Delayed, msg_id: int, due: int,
                      copies: list[tuple[Any, Message]]) -> None:
        store = self.node.store
        if not ok and not self.closed and store.unremove(self, msg, msg_id):
            # Not on disk: the delayed message stays (its ACK taken back) and fires
            # again, late but once, when the disk takes writes (the log refuses them
            # at once until its retry pause is over); the copies were never queued.
            self.fired -= 1
            self._push(msg, now_ms() + RETRY_FIRE_MS)
            return
        wait = due - now_ms()
        if wait <= 0 or self.halted:  # (stopping: no consumer is left to see it early)
            self._enqueue(copies)
            return
        # Written ahead (_fire): handed over at the due time.
        self._hand_seq += 1
        self._handing[(due << SEQ_BITS) | self._hand_seq] = copies
        if self._hand_timer is None or due < self._hand_due:
            self._arm_hand_over(due)

    def _arm_hand_over(self, due: int) -> None:
        if self._hand_timer is not None:
            self._hand_timer.cancel()
        self._hand_due = due
        self._hand_timer = self._at(due, self._hand_over)

    def _hand_over(self, everything: bool = False) -> None:
        """Copies written ahead go to their queues at their due time (checked on the wall
        clock: the loop's may wake us early), or all at once when stopping."""
        self._hand_timer = None
        now = now_ms()
        for key in sorted(self._handing):
            if key >> SEQ_BITS > now and not everything:
                break
            self._enqueue(self._handing.pop(key))
        if self._handing and not everything:
            self._arm_hand_over(min(self._handing) >> SEQ_BITS)

    def _enqueue(self, copies: list[tuple[Any, Message]]) -> None:
        """Each queue still there with room takes its copy (a full reject-publish queue
        drops it, as it drops any message nobody publishes: the plugin's
        stateless delivery)."""
        store = self.node.store
        queues = self.vhost.queues
        for q, copy in copies:
            if queues.get(q.name) is not q or q.would_overflow(len(copy.body)):
                if copy.msg_id is not None:
                    store.remove(q, copy)
                continue
            q.enqueue(copy)

    # -- reading paged messages back ---------------------------------------------------
    def _arm_read(self, due: int) -> None:
        if self.halted:
            return
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_due = due
        self._read_timer = self._at(due - READ_AHEAD_MS, self._read)

    def _read(self) -> None:
        self._read_timer = None
        if self._reading or self.closed or self.halted:
            return  # the read under way re-arms when done
        paged = self._paged
        horizon = now_ms() + READ_AHEAD_MS
        while paged and paged[0] >> ENTRY_BITS <= horizon and len(self._reading) < READ_CHUNK:
            self._reading.append(heapq.heappop(paged))
        if not self._reading:
            if paged:
                self._arm_read(paged[0] >> ENTRY_BITS)
            return
        try:
            fut = self.node.store.read_entries_soon([i & ENTRY_MASK for i in self._reading])
        except OSError as exc:
            self._read_failed(exc)
            return
        fut.add_done_callback(self._read_done)

    def _read_done(self, fut: Any) -> None:
        items, self._reading = self._reading, []
        if self.closed:
            return
        exc = fut.exception()
        if exc is not None:
            self._reading = items
            self._read_failed(exc)
            return
        horizon = now_ms() + PAGE_AFTER_MS
        for item, rec in zip(items, fut.result(), strict=True):
            if rec is None:  # not where its entry says (logged by the reader): lost
                continue
            if rec.expires_ms > horizon:  # its due time was not known (restore): later
                self._page((rec.expires_ms << ENTRY_BITS) | (item & ENTRY_MASK))
                continue
            msg = Delayed(rec.exchange, rec.routing_key, rec.header, rec.body, True)
            msg.msg_id = rec.seq
            msg.store_pos = item & 0xFFFFFFFF
            self._push(msg, rec.expires_ms)  # the record's due time, the one truth
        if self._paged:
            self._arm_read(self._paged[0] >> ENTRY_BITS)

    def _read_failed(self, exc: BaseException) -> None:
        """A disk that fails a read must not cost the messages: back into the heap,
        tried again soon (they fire late rather than never)."""
        log.error("delayed messages of %s could not be read back (retrying): %s",
                  self.exchange.name, exc)
        for item in self._reading:
            heapq.heappush(self._paged, item)
        self._reading = []
        if not self.halted:
            self._read_timer = self.loop.call_later(RETRY_READ_S, self._read)

    # -- start and stop ----------------------------------------------------------------
    def restore(self, entries: list[int]) -> int:
        """At start: the exchange's messages the log holds (compact entries).  Their
        records are read a chunk at a time for the due time; the body is kept only
        for those due soon.  Returns how many came back."""
        store = self.node.store
        back = 0
        horizon = now_ms() + PAGE_AFTER_MS
        for i in range(0, len(entries), READ_CHUNK):
            chunk = entries[i:i + READ_CHUNK]
            try:
                recs = store.read_entries(chunk)
            except OSError as exc:
                # A disk failing reads must not stop the start (a queue's messages are
                # read later too): their due time unknown, they are read back as soon
                # as the disk allows (due 0 = now), then wait for their real one.
                log.error("delayed messages of %s could not be read at start (retrying): %s",
                          self.exchange.name, exc)
                for e in chunk:
                    self._page(e)
                back += len(chunk)
                continue
            for e, rec in zip(chunk, recs, strict=True):
                if rec is None:
                    continue
                back += 1
                if rec.expires_ms > horizon:
                    self._page((rec.expires_ms << ENTRY_BITS) | e)
                    continue
                msg = Delayed(rec.exchange, rec.routing_key, rec.header, rec.body, True)
                msg.msg_id = rec.seq
                msg.store_pos = e & 0xFFFFFFFF
                self._push(msg, rec.expires_ms)
        return back

    def snapshot(self) -> tuple[list[int], int] | None:
        """The logged messages as compact entries (for the clean-stop snapshot); None
        if one is not written yet.  (Body bytes only of those in memory: recovery
        does not use them for an exchange.)"""
        if self._unwritten or self._handing:
            # A copy on disk but not yet in its queue's snapshot: the next start scans.
            return None
        entries = [i & ENTRY_MASK for i in self._paged]
        entries += [i & ENTRY_MASK for i in self._reading]
        size = 0
        for msg in self._msgs.values():
            if msg.msg_id is None:
                continue
            if msg.store_pos is None:
                return None
            entries.append((msg.msg_id << 32) | msg.store_pos)
            size += len(msg.body)
        entries.sort()
        return entries, size

    def halt(self) -> None:
        """A clean stop (connections closed, the log about to close): no more fires or
        reads; the waiting messages stay in the log for the next start.  Copies written
        ahead go to their queues now, so the shutdown snapshot has them."""
        self.halted = True
        for timer in (self._timer, self._read_timer, self._hand_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._read_timer = None
        self._hand_over(everything=True)  # consumers are gone: into the queues' snapshot

    def close(self) -> None:
        """The exchange is deleted: its waiting messages go with it."""
        self.closed = True
        for timer in (self._timer, self._read_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._read_timer = None
        store = self.node.store
        held = list(self._msgs.values()) + [m for _due, m in self._unwritten]
        self.node.account(-sum(len(m.body) for m in held))
        for msg in held:
            if msg.msg_id is not None and store is not None:
                store.remove(self, msg)
        for item in self._paged + self._reading:
            store.forget(self.store_id, (item & ENTRY_MASK) >> 32)
        self._msgs.clear()
        self._mem.clear()
        self._paged.clear()
        self._unwritten.clear()
        self._reading = []
