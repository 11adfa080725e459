"""Queue over both message stores, in process: no sockets, no broker subprocess.

Each test runs against a transient queue (MemoryStore) and a durable queue of a
broker with a data dir (PagedStore over a real MessageLog in a temp dir).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hutch.broker.consumer import Consumer
from hutch.broker.message import Message
from hutch.broker.node import Node
from hutch.broker.queue import WINDOW, WINDOW_BYTES, Queue
from hutch.broker.queue_store.memory import MemoryStore
from hutch.broker.queue_store.paged import PagedStore

Body = Callable[[int], bytes]


def small(i: int) -> bytes:
    return f"m{i:06d}".encode()


def paging(i: int) -> bytes:
    """Big enough that WINDOW of them fill WINDOW_BYTES: paging starts at WINDOW."""
    return f"m{i:06d}".encode().ljust(WINDOW_BYTES // WINDOW, b".")


class FakeChannel:
    """What a consumer's channel offers the queue: room, and the delivery itself."""

    def __init__(self) -> None:
        self.got: list[Message] = []
        self.open = True

    def can_deliver(self) -> bool:
        return self.open

    def can_deliver_no_ack(self) -> bool:
        return self.open

    def deliver(self, consumer: Consumer, msg: Message) -> None:
        self.got.append(msg)


async def _settle(broker: Node) -> None:
    """Let the pump dispatch and the log write what this turn produced."""
    for _ in range(3):
        await asyncio.sleep(0)
    if broker.store is not None:
        await broker.store.drain()
        await asyncio.sleep(0)


def run(durable: bool, tmp_path: Any, test: Callable[[Node, Queue], Awaitable[None]],
        arguments: dict[str, Any] | None = None) -> None:
    async def go() -> None:
        broker = Node()
        if durable:
            await broker.open_store(str(tmp_path / "data"), sync="none")
        q = broker.vhosts["/"].declare_queue("q", False, durable, False, False, arguments or {}, None)
        assert isinstance(q.store, PagedStore if durable else MemoryStore)
        try:
            await test(broker, q)
        finally:
            if durable:
                await broker.close_store()
    asyncio.run(go())


def publish(q: Queue, bodies: list[bytes], persistent: bool = True,
            expires_at: float | None = None) -> None:
    for b in bodies:
        q.enqueue(Message("", "q", b"h", b, persistent, expires_at))


def drain(q: Queue) -> list[bytes]:
    out = []
    while (msg := q.get(no_ack=True)) is not None:
        out.append(msg.body)
    return out


both = pytest.mark.parametrize("durable", [False, True], ids=["memory", "paged"])


@both
def test_fifo_and_counts(durable: bool, tmp_path: Any) -> None:
    async def test(broker: Node, q: Queue) -> None:
        bodies = [small(i) for i in range(100)]
        publish(q, bodies)
        assert (q.message_count, q.ready_bytes) == (100, sum(map(len, bodies)))
        await _settle(broker)
        assert drain(q) == bodies
        assert (q.message_count, q.ready_bytes, q.unacked_count) == (0, 0, 0)
    run(durable, tmp_path, test)


@both
def test_requeue_goes_back_to_original_position(durable: bool, tmp_path: Any) -> None:
    async def test(broker: Node, q: Queue) -> None:
        publish(q, [small(i) for i in range(6)])
        taken = [q.get(no_ack=False) for _ in range(4)]
        assert all(m is not None for m in taken)
        q.requeue([taken[3], taken[1]])  # any order: positions decide
        q.requeue([taken[0]])
        assert q.unacked_count == 1
        got = [q.get(no_ack=True) for _ in range(5)]
        assert [m.body for m in got if m] == [small(0), small(1), small(3), small(4), small(5)]
        assert [m.redelivered for m in got if m] == [True, True, True, False, False]
        q.ack(taken[2])  # type: ignore[arg-type]
        assert (q.message_count, q.unacked_count, q.unacked_bytes) == (0, 0, 0)
    run(durable, tmp_path, test)


@both
def test_consumers_get_everything_in_order_beyond_the_window(durable: bool, tmp_path: Any) -> None:
    n = WINDOW * 2 + 77

    async def test(broker: Node, q: Queue) -> None:
        bodies = [paging(i) for i in range(n)]
        publish(q, bodies)
        await _settle(broker)
        if durable:
            assert q.paged > 0  # beyond the window: only on disk
            assert broker.queued_bytes < sum(map(len, bodies))
        ch = FakeChannel()
        consumer = Consumer("c", ch, q, True, False, 0, {})
        q.add_consumer(consumer)
        while q.message_count:
            await _settle(broker)
        assert [m.body for m in ch.got] == bodies
        assert (q.paged, q.paged_bytes, q.ready_bytes) == (0, 0, 0)
        assert broker.queued_bytes == 0
    run(durable, tmp_path, test)


def test_requeue_while_paged_keeps_order(tmp_path: Any) -> None:
    n = WINDOW * 2

    async def test(broker: Node, q: Queue) -> None:
        bodies = [paging(i) for i in range(n)]
        publish(q, bodies)
        await _settle(broker)
        first = [q.get(no_ack=False) for _ in range(WINDOW - 10)]  # the window drains, refills
        q.requeue([m for m in first if m is not None])
        assert drain(q) == bodies
    run(True, tmp_path, test)


@both
def test_max_length_drops_the_head(durable: bool, tmp_path: Any) -> None:
    async def test(broker: Node, q: Queue) -> None:
        publish(q, [paging(i) for i in range(WINDOW + 50)])
        assert q.message_count == 10
        await _settle(broker)
        assert drain(q) == [paging(i) for i in range(WINDOW + 40, WINDOW + 50)]
    run(durable, tmp_path, test, {"x-max-length": 10})


@both
def test_expired_messages_at_the_head_are_dropped(durable: bool, tmp_path: Any) -> None:
    async def test(broker: Node, q: Queue) -> None:
        publish(q, [b"old-1", b"old-2"], expires_at=time.monotonic() + 0.05)
        publish(q, [b"fresh"])
        await asyncio.sleep(0.1)  # the TTL timer fires and drops the expired head
        assert q.message_count == 1
        assert drain(q) == [b"fresh"]
        # basic.get skips (drops) expired messages too, without waiting for the timer.
        publish(q, [b"gone"], expires_at=time.monotonic() - 1)
        publish(q, [b"kept"])
        assert drain(q) == [b"kept"]
    run(durable, tmp_path, test)


@both
def test_purge(durable: bool, tmp_path: Any) -> None:
    async def test(broker: Node, q: Queue) -> None:
        publish(q, [paging(i) for i in range(WINDOW + 100)])
        publish(q, [b"transient"], persistent=False)
        await _settle(broker)
        assert q.purge() == WINDOW + 101
        assert (q.message_count, q.ready_bytes, q.paged, broker.queued_bytes) == (0, 0, 0, 0)
        publish(q, [b"after"])
        assert drain(q) == [b"after"]
    run(durable, tmp_path, test)


def test_snapshot_entries_in_queue_order(tmp_path: Any) -> None:
    async def test(broker: Node, q: Queue) -> None:
        bodies = [paging(i) for i in range(WINDOW + 30)]
        publish(q, bodies)
        publish(q, [b"transient"], persistent=False)
        await _settle(broker)
        taken = q.get(no_ack=False)
        assert taken is not None
        q.requeue([taken])
        delivered: set[int] = set()
        state = q.store.snapshot(delivered)
        assert state is not None
        entries, size = state
        assert len(entries) == len(bodies)
        assert [e >> 32 for e in entries] == sorted(e >> 32 for e in entries)  # publish order
        assert size == sum(map(len, bodies))
        assert delivered == {entries[0] >> 32}  # the requeued one
        assert broker.store.read_entries(entries[-1:])[0].body == bodies[-1]  # type: ignore[union-attr]
    run(True, tmp_path, test)


def test_restart_brings_messages_back_in_order(tmp_path: Any) -> None:
    bodies = [paging(i) for i in range(WINDOW + 30)]

    async def first(broker: Node, q: Queue) -> None:
        publish(q, bodies)
        await _settle(broker)
        taken = q.get(no_ack=False)
        assert taken is not None
        await _settle(broker)
        q.requeue([taken])  # delivered once: redelivered after the restart

    async def second(broker: Node, q: Queue) -> None:
        assert (q.message_count, q.paged) == (len(bodies), len(bodies))
        got = [q.get(no_ack=True) for _ in bodies]
        assert [m.body for m in got if m] == bodies
        assert [m.redelivered for m in got if m][:2] == [True, False]

    run(True, tmp_path, first)
    run(True, tmp_path, second)


async def _until_reading_ahead(q: Queue) -> list[bytes]:
    """Take messages until the store reads the next run ahead, off the loop."""
    store = q.store
    assert isinstance(store, PagedStore)
    taken = []
    while store._reading is None:
        msg = q.get(no_ack=True)
        assert msg is not None
        taken.append(msg.body)
    return taken


def test_basic_get_overtakes_a_read_ahead(tmp_path: Any) -> None:
    """basic.get cannot wait: with the window empty it reads synchronously, and the
    read-ahead that was under way is ignored when it lands (no duplicates)."""
    bodies = [paging(i) for i in range(WINDOW * 3)]

    async def test(broker: Node, q: Queue) -> None:
        publish(q, bodies)
        await _settle(broker)
        got = await _until_reading_ahead(q)
        got += drain(q)  # empties the window, then reads the rest here and now
        await _settle(broker)
        got += drain(q)
        assert got == bodies
        assert (q.message_count, q.paged, q.paged_bytes, broker.queued_bytes) == (0, 0, 0, 0)
    run(True, tmp_path, test)


def test_purge_during_a_read_ahead(tmp_path: Any) -> None:
    async def test(broker: Node, q: Queue) -> None:
        publish(q, [paging(i) for i in range(WINDOW * 3)])
        await _settle(broker)
        await _until_reading_ahead(q)
        q.purge()
        publish(q, [b"after"])
        await _settle(broker)  # the read lands: ignored
        assert (q.message_count, q.paged) == (1, 0)
        assert drain(q) == [b"after"]
        assert broker.queued_bytes == 0
    run(True, tmp_path, test)


def test_consumer_waits_for_the_read_ahead_instead_of_reading_on_the_loop(tmp_path: Any) -> None:
    bodies = [paging(i) for i in range(WINDOW * 3)]

    async def test(broker: Node, q: Queue) -> None:
        publish(q, bodies)
        await _settle(broker)
        got = await _until_reading_ahead(q)
        store = q.store
        assert isinstance(store, PagedStore)
        reads = 0
        read_entries = broker.store.read_entries

        def counting(entries: list[int]) -> Any:
            nonlocal reads
            reads += 1
            return read_entries(entries)

        broker.store.read_entries = counting  # type: ignore[method-assign]
        ch = FakeChannel()
        q.add_consumer(Consumer("c", ch, q, True, False, 0, {}))
        while q.message_count:
            await _settle(broker)
        assert got + [m.body for m in ch.got] == bodies
        assert reads == 0  # every read happened on the reader thread
    run(True, tmp_path, test)


def test_an_unreadable_paged_message_is_lost_once_and_leaves_no_count_behind(tmp_path: Any) -> None:
    """A paged-out message whose record is gone from its segment (cut behind the log's
    back): it is counted lost, and neither the queue's bytes nor its segment's live
    count keep it (a segment nobody can read from any more would be pinned for good)."""
    n = WINDOW * 2

    async def test(broker: Node, q: Queue) -> None:
        bodies = [paging(i) for i in range(n)]
        publish(q, bodies)
        await _settle(broker)
        store = q.store
        assert isinstance(store, PagedStore) and store.paged > 0
        last = store.backlog[-1]
        seg = broker.store._segment_of(last >> 32, pop=False)
        with open(seg.path, "r+b") as f:
            f.truncate((last & 0xFFFFFFFF) + 2)  # the last paged record, cut
        got = drain(q)
        assert got == bodies[:-1] and len(got) == n - 1
        assert (q.message_count, store.bytes, store.paged, store.paged_bytes) == (0, 0, 0, 0)
        assert seg.live == 0  # every message of it consumed, or lost and forgotten
    run(True, tmp_path, test)
