"""Segment reclamation (store/reclaim.py): a carry-forward reads its segment on the
writer thread, never on the event loop, and still keeps acks that cross segments."""

from __future__ import annotations

import asyncio
import threading

from hutch.store.files import Files
from hutch.store.log import MessageLog
from tests.store.test_log import Q, _recover, msg, run


class ReadsRecorded(Files):
    def __init__(self) -> None:
        self.reads: list[tuple[str, str]] = []  # (path, thread name)

    def read(self, path: str) -> bytes:
        self.reads.append((path, threading.current_thread().name))
        return super().read(path)


def test_a_carry_forward_reads_its_segment_off_the_loop(tmp_path) -> None:
    """Segment A holds a message nobody consumes; the ACK of another A message lands
    in B, which then dies: B's reference to A is carried forward (B read on the
    writer thread), B is deleted, and after a restart A's acked message stays acked."""
    d = str(tmp_path / "msgs")
    files = ReadsRecorded()

    async def go() -> tuple[list[str], list[int]]:
        log = MessageLog(d, asyncio.get_running_loop(), files=files, segment_size=300)
        log.recover()
        files.reads.clear()  # recovery reads on the loop: it runs before anything is served
        q = Q(7)
        kept, acked = msg(b"k" * 100), msg(b"a" * 100)
        log.add(q, kept)
        log.add(q, acked)
        await log.drain()  # segment A: "kept" keeps it alive
        b = msg(b"b" * 200)
        log.add(q, b)
        log.remove(q, acked)
        await log.drain()  # segment B: b, and the ACK of "acked" (refers to A)
        assert [s.first_seq for s in log.segments] == [1, 3]
        for n in b"cdef":  # B dies, its ACK goes forward, newer segments come and go
            m = msg(bytes([n]) * 200)
            log.add(q, m)
            log.remove(q, b)
            await log.drain()
            b = m
        await asyncio.wait_for(log.settle(), 5)
        segments = [s.first_seq for s in log.segments]
        log.close()
        return [name for _path, name in files.reads], segments

    threads, segments = run(go())
    assert threads and all(name.startswith("hutch-fsync") for name in threads), threads
    assert segments[0] == 1 and 3 not in segments  # A is alive, B was reclaimed
    assert _recover(d)[0] == [b"k" * 100, b"f" * 200]  # never "a": its ack was carried
