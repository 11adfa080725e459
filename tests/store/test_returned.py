"""RETURNED records (store/records.py): a message's return counts survive a log scan,
the shutdown snapshot, a carry-forward of its segment, and salvage; the wire tests are
tests/integration/test_delivery_limit.py."""

from __future__ import annotations

import asyncio
import os

from hutch.store import records, snapshot
from hutch.store.log import MessageLog
from tests.store.test_log import Q, msg, run


def _returned(log: MessageLog, q: Q, m, dc: int, ac: int) -> None:
    m.returns = [dc, ac]
    log.returned(q, m)


def _counts_after_recovery(d: str, **kw) -> tuple[dict[int, tuple[int, int]], str]:
    async def go():
        log = MessageLog(d, asyncio.get_running_loop(), **kw)
        log.recover()
        counts, how = dict(log.counts), log.recovered_from
        log.close()
        return counts, how
    return run(go())


def test_counts_survive_a_scan_and_the_newest_wins(tmp_path) -> None:
    d = str(tmp_path / "msgs")

    async def go() -> tuple[int, int]:
        log = MessageLog(d, asyncio.get_running_loop())
        log.recover()
        q = Q(7)
        a, b, c = msg(b"a"), msg(b"b"), msg(b"c")
        for m in (a, b, c):
            log.add(q, m)
        _returned(log, q, a, 1, 1)  # in the same batch as its PUBLISH
        await log.drain()
        _returned(log, q, a, 1, 2)
        _returned(log, q, b, 3, 3)
        _returned(log, q, c, 0, 1)
        await log.drain()
        ids = a.msg_id, c.msg_id
        log.remove(q, c)  # acked: its counts are gone with it
        await log.drain()
        log.close()
        return ids

    a_id, c_id = run(go())
    counts, how = _counts_after_recovery(d)
    assert how == "log scan"
    assert counts == {a_id: (1, 2), a_id + 1: (3, 3)}
    assert c_id not in counts


def test_counts_go_through_the_snapshot(tmp_path) -> None:
    d = str(tmp_path / "msgs")

    async def go() -> int:
        log = MessageLog(d, asyncio.get_running_loop())
        log.recover()
        q = Q(7)
        a = msg(b"a")
        log.add(q, a)
        await log.drain()
        _returned(log, q, a, 2, 5)
        await log.settle()
        entries = [(a.msg_id << 32) | a.store_pos]
        assert log.write_snapshot([snapshot.QueueState(7, entries, 1)], set())
        log.close()
        return a.msg_id

    a_id = run(go())
    counts, how = _counts_after_recovery(d)
    assert how == "shutdown snapshot"
    assert counts == {a_id: (2, 5)}


def test_a_version_1_snapshot_still_loads() -> None:
    snap = snapshot.Snapshot(9, [snapshot.SegmentState(1, 100, 1, None)],
                             [snapshot.QueueState(7, [(3 << 32) | 12], 5)], {3})
    v1 = snapshot.encode(snap, version=1)
    # Version 1 is version 2 without the counts and priority sections (12 bytes empty).
    assert len(v1) == len(snapshot.encode(snap)) - 12 and v1[8:12] == (1).to_bytes(4, "big")
    back = snapshot.decode(v1)
    assert back.queues[0].entries == [(3 << 32) | 12] and back.delivered == {3}
    assert back.counts == {}
    snap.counts = {3: (4, 6)}
    assert snapshot.decode(snapshot.encode(snap)).counts == {3: (4, 6)}


def test_a_returned_reference_is_carried_forward(tmp_path) -> None:
    """Segment A holds a message that keeps coming back; its RETURNED record lands in
    B, which then dies: the counts are carried forward before B is deleted."""
    d = str(tmp_path / "msgs")

    async def go() -> tuple[int, list[int]]:
        log = MessageLog(d, asyncio.get_running_loop(), segment_size=300)
        log.recover()
        q = Q(7)
        kept = msg(b"k" * 100)
        log.add(q, kept)
        await log.drain()  # segment A
        b = msg(b"b" * 200)
        log.add(q, b)
        _returned(log, q, kept, 1, 1)
        await log.drain()  # segment B: b, and kept's counts (refers to A)
        for n in b"cdef":  # B dies; newer segments come and go
            m = msg(bytes([n]) * 200)
            log.add(q, m)
            log.remove(q, b)
            await log.drain()
            b = m
        await asyncio.wait_for(log.settle(), 5)
        segments = [s.first_seq for s in log.segments]
        log.close()
        return kept.msg_id, segments

    kept_id, segments = run(go())
    assert segments[0] == 1 and 2 not in segments  # A alive, B reclaimed
    counts, _how = _counts_after_recovery(d)
    assert counts == {kept_id: (1, 1)}


def test_salvaged_messages_keep_their_counts(tmp_path) -> None:
    """A damaged middle segment: what is salvaged into a fresh segment takes its
    RETURNED record along, so a second recovery still sees the counts."""
    d = str(tmp_path / "msgs")

    async def go() -> int:
        log = MessageLog(d, asyncio.get_running_loop(), segment_size=300)
        log.recover()
        q = Q(7)
        a = msg(b"a" * 50)
        log.add(q, a)
        log.add(q, msg(b"x" * 50))
        await log.drain()
        log.add(q, msg(b"n" * 400))  # a new segment: the first one is a middle one now
        await log.drain()
        _returned(log, q, a, 2, 3)  # recorded in the new segment
        await log.drain()
        log.close()
        return a.msg_id

    a_id = run(go())
    first = os.path.join(d, sorted(os.listdir(d))[0])
    data = bytearray(open(first, "rb").read())
    off = len(b"HUTCHLOG") + 4
    off += records.read_length(data, off)  # a's PUBLISH stays readable
    data[off + 20] ^= 0xFF  # the next record (x's PUBLISH) is damaged
    open(first, "wb").write(bytes(data))
    counts, _how = _counts_after_recovery(d)
    assert counts == {a_id: (2, 3)}
    # The salvage segment (the newest) holds a's PUBLISH and its counts.
    salvage = bytes(open(os.path.join(d, sorted(n for n in os.listdir(d)
                                                 if n.endswith(".seg"))[-1]), "rb").read())
    off, found = len(b"HUTCHLOG") + 4, []
    while off < len(salvage):
        rtype, _seq, start, end = records.read_record(salvage, off)
        if rtype == records.RETURNED:
            found += records.decode_returned(salvage, start)
        off = end
    assert found == [(7, a_id, 2, 3)]
    counts, _how = _counts_after_recovery(d)
    assert counts == {a_id: (2, 3)}
