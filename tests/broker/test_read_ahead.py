"""The paged store's read-ahead and the log's off-loop reads racing with everything else
(basic.get, drop-head, failed writes, shutdown, EIO, recovery), in process."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from hutch.broker.consumer import Consumer
from hutch.broker.message import Message
from hutch.broker.node import Node
from hutch.broker.queue import WINDOW, WINDOW_BYTES, Queue
from hutch.broker.queue_store.paged import PagedStore
from hutch.store.files import Files
from hutch.store.log import MessageLog
from tests.store.test_log import Q, msg


def paging(i: int) -> bytes:
    return f"m{i:06d}".encode().ljust(WINDOW_BYTES // WINDOW, b".")


class FakeChannel:
    def __init__(self) -> None:
        self.got: list[Message] = []

    def can_deliver(self) -> bool:
        return True

    def can_deliver_no_ack(self) -> bool:
        return True

    def deliver(self, consumer: Consumer, m: Message) -> None:
        self.got.append(m)

    def cancel_by_server(self, *a: Any) -> None:
        pass


class GatedReads(Files):
    """preads on the reader thread wait for ``gate`` (read-aheads stay in flight)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()

    def pread(self, fd: int, n: int, offset: int) -> bytes:
        if threading.current_thread().name.startswith("hutch-read"):
            assert self.gate.wait(10)
        return super().pread(fd, n, offset)


async def _settle(broker: Node) -> None:
    for _ in range(3):
        await asyncio.sleep(0)
    await broker.store.drain()
    await asyncio.sleep(0.01)


def publish(q: Queue, bodies: list[bytes]) -> None:
    for b in bodies:
        q.enqueue(Message("", "q", b"h", b, True))


def run_paged(tmp_path: Any, test, arguments=None, files=None) -> None:
    async def go() -> None:
        broker = Node()
        await broker.open_store(str(tmp_path / "data"), sync="none", files=files)
        q = broker.vhosts["/"].declare_queue("q", False, True, False, False, arguments or {}, None)
        assert isinstance(q.store, PagedStore)
        try:
            await test(broker, q)
        finally:
            await broker.close_store()
    asyncio.run(go())


def _stall_setup(tmp_path: Any, overtake) -> None:
    """A consumer waits for a read-ahead; something that cannot wait (basic.get,
    drop-head) overtakes it with a synchronous read.  The consumer must then get the
    messages that read brought into memory."""
    files = GatedReads()
    n = WINDOW * 3

    async def test(broker: Node, q: Queue) -> None:
        publish(q, [paging(i) for i in range(n)])
        await _settle(broker)
        store = q.store
        files.gate.clear()  # the read-ahead will stay in flight
        while store._reading is None:
            assert q.get(no_ack=True) is not None
        while store.ready:
            assert q.get(no_ack=True) is not None
        ch = FakeChannel()
        q.add_consumer(Consumer("c", ch, q, True, False, 0, {}))
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the pump dispatched: nothing in memory, read in flight
        assert ch.got == [] and store._reading is not None
        overtake(q)  # reads the head synchronously; the read-ahead is dropped
        files.gate.set()
        for _ in range(30):
            await _settle(broker)
        # Everything left must reach the only consumer (it has unlimited room).
        assert (q.message_count, len(store.ready), len(ch.got)) == (0, 0, len(ch.got))
    run_paged(tmp_path, test, files=files)


def test_consumer_keeps_receiving_after_basic_get_overtakes_a_read_ahead(tmp_path: Any) -> None:
    _stall_setup(tmp_path, lambda q: q.get(no_ack=True))


def test_consumer_keeps_receiving_after_drop_head_overtakes_a_read_ahead(tmp_path: Any) -> None:
    def overtake(q: Queue) -> None:
        q.max_length = q.message_count - 1  # the next publish drops the head
        publish(q, [b"x"])
    _stall_setup(tmp_path, overtake)


class FlakyFiles(Files):
    """``read`` (the carry-forward scan, on the writer thread) can be held; writes
    fail while ``fail`` is set."""

    retry_after = 0.05

    def __init__(self) -> None:
        self.scan_gate = threading.Event()
        self.scan_gate.set()
        self.scanning = threading.Event()
        self.fail = False

    def read(self, path: str) -> bytes:
        if threading.current_thread().name.startswith("hutch-fsync"):
            self.scanning.set()
            assert self.scan_gate.wait(10)
        return super().read(path)

    def writev(self, fd: int, buffers: list[bytes]) -> None:
        if self.fail:
            raise OSError(5, "EIO (injected)")
        super().writev(fd, buffers)


def test_carry_forward_refused_by_a_failed_write_unpins_its_segment(tmp_path: Any) -> None:
    """A carry-forward's scan finishes while the log is in its write-error back-off:
    the carry batch is refused in _flush without unpinning the segment or clearing
    _carrying; after the disk recovers the segment is never reclaimed, no other
    carry-forward ever starts, and settle() never gets idle (no shutdown snapshot)."""
    d = str(tmp_path / "msgs")
    files = FlakyFiles()

    async def go() -> None:
        log = MessageLog(d, asyncio.get_running_loop(), files=files, segment_size=300)
        log.recover()
        q = Q(7)
        kept, acked = msg(b"k" * 100), msg(b"a" * 100)
        log.add(q, kept)
        log.add(q, acked)
        await log.drain()  # segment A (1): "kept" keeps it alive
        b = msg(b"b" * 200)
        log.add(q, b)
        log.remove(q, acked)
        await log.drain()  # segment B (3): b and the ACK of "acked" (refers to A)
        files.scan_gate.clear()
        c = msg(b"c" * 200)
        log.add(q, c)
        log.remove(q, b)  # B dies: its ACK must be carried forward
        await log.drain()
        assert await asyncio.get_running_loop().run_in_executor(None, files.scanning.wait, 5)
        files.fail = True  # a write fails while the scan is under way
        log.add(q, msg(b"x" * 10))
        await asyncio.sleep(0)
        files.scan_gate.set()
        await asyncio.sleep(0.02)
        files.fail = False  # the disk is fine again
        for _i in range(5):  # more traffic, retries succeed
            m = msg(b"y" * 10)
            log.add(q, m)
            await asyncio.sleep(0.1)
            await log.drain()
            if m.msg_id is not None:
                log.remove(q, m)
            await log.drain()
        await asyncio.wait_for(log.settle(), 10)
        state = ([s.first_seq for s in log.segments if s.first_seq == 3], log._carrying, log._idle())
        log.close()
        assert state == ([], False, True)  # B reclaimed, nothing carrying, log idle

    asyncio.run(go())


class EioReads(Files):
    """The first ``left`` preads on the reader thread fail with EIO."""

    def __init__(self) -> None:
        self.left = 0
        self.hits = 0

    def pread(self, fd: int, n: int, offset: int) -> bytes:
        if self.left and threading.current_thread().name.startswith("hutch-read"):
            self.left -= 1
            self.hits += 1
            raise OSError(5, "EIO (injected)")
        return super().pread(fd, n, offset)


def test_eio_on_read_ahead_loses_nothing(tmp_path: Any) -> None:
    files = EioReads()
    bodies = [paging(i) for i in range(WINDOW * 3)]

    async def test(broker: Node, q: Queue) -> None:
        publish(q, bodies)
        await _settle(broker)
        files.left = 3
        ch = FakeChannel()
        q.add_consumer(Consumer("c", ch, q, True, False, 0, {}))
        for _ in range(400):
            await _settle(broker)
            if not q.message_count:
                break
        assert files.hits == 3
        assert [m.body for m in ch.got] == bodies
        assert (q.paged, q.paged_bytes, q.ready_bytes, broker.queued_bytes) == (0, 0, 0, 0)
    run_paged(tmp_path, test, files=files)


def test_snapshot_with_a_read_ahead_in_flight(tmp_path: Any) -> None:
    files = GatedReads()
    bodies = [paging(i) for i in range(WINDOW * 3)]
    taken: list[bytes] = []

    async def first(broker: Node, q: Queue) -> None:
        publish(q, bodies)
        await _settle(broker)
        files.gate.clear()
        while q.store._reading is None:
            taken.append(q.get(no_ack=True).body)
        threading.Timer(0.3, files.gate.set).start()  # close() waits for the reader

    run_paged(tmp_path, first, files=files)
    import os
    assert os.path.exists(str(tmp_path / "data" / "msgs"))

    async def second(broker: Node, q: Queue) -> None:
        assert broker.store.recovered_from == "shutdown snapshot"
        got = []
        while (m := q.get(no_ack=True)) is not None:
            got.append(m.body)
        assert taken + got == bodies
    run_paged(tmp_path, second)


def test_accounting_returns_to_zero(tmp_path: Any) -> None:
    files = GatedReads()
    bodies = [paging(i) for i in range(WINDOW * 3)]

    async def test(broker: Node, q: Queue) -> None:
        publish(q, bodies)
        publish_t = [Message("", "q", b"h", b"t" * 50, False)]
        q.enqueue(publish_t[0])
        await _settle(broker)
        ch = FakeChannel()
        c = Consumer("c", ch, q, False, False, 300, {})
        q.add_consumer(c)
        await _settle(broker)
        files.gate.clear()
        # ack some, requeue some, nack the rest while reads are in flight
        held = list(ch.got)
        for m in held[:100]:
            q.ack(m)
        q.requeue(held[100:200])
        for m in held[200:]:
            q.reject(m)
        ch.got.clear()
        await asyncio.sleep(0)
        x = q.get(no_ack=False)  # may overtake a read-ahead
        files.gate.set()
        await _settle(broker)
        q.requeue([x])
        for m in list(ch.got):
            q.ack(m)
        q.purge()
        await _settle(broker)
        for m in list(ch.got):
            if m.consumer is not None:
                pass
        assert (q.message_count, q.ready_bytes, q.paged, q.paged_bytes) == (0, 0, 0, 0)
        assert (broker.queued_bytes, q.unacked_count) == (0, 0)
        st = q.store
        assert (st.held_bytes, len(st.ready), len(st.backlog), len(st.spill)) == (0, 0, 0, 0)
        q.vhost.delete_queue(q, reason="test")
        await _settle(broker)
        assert (broker.queued_bytes, q.unacked_count) == (0, 0)
    run_paged(tmp_path, test, files=files)




@pytest.mark.parametrize("clean", [True, False], ids=["snapshot", "scan"])
def test_each_queue_gets_its_own_recovered_delivered(tmp_path: Any, clean: bool) -> None:
    data = str(tmp_path / "data")

    async def first() -> None:
        broker = Node()
        await broker.open_store(data, sync="none")
        v = broker.vhosts["/"]
        qs = [v.declare_queue(n, False, True, False, False, {}, None) for n in ("a", "b")]
        for q in qs:
            for i in range(3):
                q.enqueue(Message("", q.name, b"h", f"{q.name}{i}".encode(), True))
        await broker.store.drain()
        ta = qs[0].get(no_ack=False)  # a0 delivered
        tb1 = qs[1].get(no_ack=False)
        tb2 = qs[1].get(no_ack=False)  # b0, b1 delivered
        await broker.store.drain()
        qs[0].requeue([ta])
        qs[1].requeue([tb1, tb2])
        if clean:
            await broker.close_store()
        else:
            await broker.store.drain()
            broker.store.close()  # like a kill -9: no snapshot

    async def second() -> dict[str, list[tuple[bytes, bool]]]:
        broker = Node()
        await broker.open_store(data, sync="none")
        out = {}
        for q in broker.vhosts["/"].queues.values():
            got = []
            while (m := q.get(no_ack=True)) is not None:
                got.append((m.body, m.redelivered))
            out[q.name] = got
        await broker.close_store()
        return out

    asyncio.run(first())
    got = asyncio.run(second())
    assert got == {"a": [(b"a0", True), (b"a1", False), (b"a2", False)],
                   "b": [(b"b0", True), (b"b1", True), (b"b2", False)]}


class GatedReadsRecorded(GatedReads):
    def __init__(self) -> None:
        super().__init__()
        self.errors: list[OSError] = []

    def pread(self, fd: int, n: int, offset: int) -> bytes:
        try:
            return super().pread(fd, n, offset)
        except OSError as exc:
            self.errors.append(exc)
            raise


def test_log_close_does_not_close_fds_under_an_in_flight_read(tmp_path: Any) -> None:
    """MessageLog.close() closes the reader fds before it waits for the reader thread:
    a read-ahead still in flight preads a closed (or already reused) fd."""
    files = GatedReadsRecorded()

    async def test(broker: Node, q: Queue) -> None:
        publish(q, [paging(i) for i in range(WINDOW * 3)])
        await _settle(broker)
        files.gate.clear()
        while q.store._reading is None:
            q.get(no_ack=True)
        threading.Timer(0.3, files.gate.set).start()

    run_paged(tmp_path, test, files=files)  # close_store -> MessageLog.close()
    assert files.errors == []
