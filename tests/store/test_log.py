"""The message log on its own: records in, recovery out, over real files in a temp dir."""

from __future__ import annotations

import asyncio
import errno
import os

import pytest

from hutch.broker.message import Message
from hutch.protocol.frames import content_header_payload
from hutch.protocol.properties import encode_properties
from hutch.store import records
from hutch.store.files import Files
from hutch.store.log import SEGMENT_HEADER, MessageLog


class Q:
    """What the log needs of a queue: its id (and the definitions version that made it
    durable; 0: long ago)."""

    def __init__(self, store_id: int) -> None:
        self.store_id = store_id
        self.defs_version = 0


def msg(body: bytes, routing_key: str = "rk") -> Message:
    header = content_header_payload(len(body), encode_properties({"delivery_mode": 2}))
    return Message("", routing_key, header, body, True)


def run(coro):
    return asyncio.run(coro)


async def _write(path: str, bodies: list[bytes], ack: list[int] = (), deliver: list[int] = (),
                 **kw) -> list[Message]:
    log = MessageLog(path, asyncio.get_running_loop(), **kw)
    log.recover()
    q = Q(7)
    msgs = []
    for b in bodies:
        m = msg(b)
        log.add(q, m)
        msgs.append(m)
    await log.drain()
    for i in deliver:
        log.delivered(q, msgs[i])
    for i in ack:
        log.remove(q, msgs[i])
    await log.drain()
    log.close()
    return msgs


def _recover(path: str, **kw) -> tuple[list[bytes], set[int], MessageLog]:
    async def go():
        log = MessageLog(path, asyncio.get_running_loop(), **kw)
        recovered = log.recover()
        entries = recovered[7].entries if 7 in recovered else []
        pubs = log.read_entries(entries)  # bodies come back from the segment files
        log.close()
        assert all(p is not None for p in pubs)
        assert sum(len(p.body) for p in pubs) == (recovered[7].bytes if pubs else 0)
        delivered = {i for i, p in enumerate(pubs) if p.seq in log.recovered_delivered}
        return [p.body for p in pubs], delivered, log
    return run(go())


def test_publish_ack_deliver_survive_reopen(tmp_path) -> None:
    d = str(tmp_path / "msgs")
    run(_write(d, [b"a", b"b", b"c", b"d"], ack=[1], deliver=[0, 2]))
    bodies, delivered, _ = _recover(d)
    assert bodies == [b"a", b"c", b"d"]
    assert delivered == {0, 1}  # "a" and "c" (indices in the recovered list)


def test_seq_keeps_growing_across_restarts(tmp_path) -> None:
    d = str(tmp_path / "msgs")
    first = run(_write(d, [b"1", b"2"]))
    second = run(_write(d, [b"3"]))
    assert second[0].msg_id > first[1].msg_id
    bodies, _, log = _recover(d)
    assert bodies == [b"1", b"2", b"3"]
    assert log.seq >= second[0].msg_id


def _segments(d: str) -> list[str]:
    return sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".seg"))


def test_torn_tail_at_every_byte_of_the_last_record(tmp_path) -> None:
    d = str(tmp_path / "msgs")
    run(_write(d, [b"first", b"second", b"x" * 150]))
    (seg,) = _segments(d)
    data = open(seg, "rb").read()
    whole = len(data)
    # Find where the last record starts by walking the records.
    off, starts = len(SEGMENT_HEADER), []
    while off < whole:
        starts.append(off)
        off = records.read_record(data, off)[3]
    last_start = starts[-1]
    for cut in range(last_start, whole):
        with open(seg, "wb") as f:
            f.write(data[:cut])
        bodies, _, _ = _recover(d)
        assert bodies == [b"first", b"second"], cut
        assert os.path.getsize(seg) == last_start  # the torn tail was cut off
    with open(seg, "wb") as f:
        f.write(data)
    assert _recover(d)[0] == [b"first", b"second", b"x" * 150]


def test_bit_flip_in_last_record_drops_only_that_record(tmp_path) -> None:
    d = str(tmp_path / "msgs")
    run(_write(d, [b"keep-1", b"keep-2", b"flipped"]))
    (seg,) = _segments(d)
    data = bytearray(open(seg, "rb").read())
    data[-3] ^= 0x10
    open(seg, "wb").write(data)
    assert _recover(d)[0] == [b"keep-1", b"keep-2"]


def test_corrupt_middle_segment_is_quarantined_and_the_rest_served(tmp_path) -> None:
    d = str(tmp_path / "msgs")
    # Tiny segments: every batch starts a new one.
    run(_write(d, [b"s1-a", b"s1-b"], segment_size=64))
    run(_write(d, [b"s2-a"], segment_size=64))
    run(_write(d, [b"s3-a"], segment_size=64))
    segs = _segments(d)
    assert len(segs) == 3
    data = bytearray(open(segs[0], "rb").read())
    # Damage the second record of the first segment.
    off = records.read_record(data, len(SEGMENT_HEADER))[3]
    data[off + 20] ^= 0xFF
    open(segs[0], "wb").write(data)
    bodies, _, _ = _recover(d, segment_size=64)
    assert bodies == [b"s1-a", b"s2-a", b"s3-a"]  # the damaged record alone is lost
    assert os.listdir(os.path.join(d, "quarantine")) == [os.path.basename(segs[0])]
    # The salvaged message now lives in a healthy segment and survives another restart.
    assert _recover(d, segment_size=64)[0] == [b"s1-a", b"s2-a", b"s3-a"]


def test_dead_segments_are_deleted(tmp_path) -> None:
    d = str(tmp_path / "msgs")

    async def go():
        log = MessageLog(d, asyncio.get_running_loop(), segment_size=300)
        log.recover()
        q = Q(7)
        msgs = []
        for i in range(12):
            m = msg(bytes([65 + i]) * 100)
            log.add(q, m)
            msgs.append(m)
            await log.drain()  # one batch each: 12 records over several segments
        many = len(_segments(d))
        assert many >= 4
        # Ack everything but the very first message: its segment stays, the dead
        # ones after it go (their references to it are carried into the head first).
        for m in msgs[1:]:
            log.remove(q, m)
        for _ in range(4):
            await log.drain()
        assert len(_segments(d)) <= 3 < many
        log.remove(q, msgs[0])
        await log.drain()
        await log.drain()
        assert len(_segments(d)) == 1  # only the head remains
        log.close()

    run(go())
    assert _recover(d)[0] == []


class FailingFiles(Files):
    """Writes fail with ENOSPC while ``full`` is set."""

    full = False

    def write(self, fd, data):
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().write(fd, data)

    def writev(self, fd, buffers):
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().writev(fd, buffers)


def test_write_error_nacks_and_is_sticky_until_it_recovers(tmp_path) -> None:
    d = str(tmp_path / "msgs")
    files = FailingFiles()
    files.retry_after = 0.2

    async def go():
        log = MessageLog(d, asyncio.get_running_loop(), files=files)
        log.recover()
        q = Q(7)
        results = []
        log.add(q, msg(b"ok-1"))
        log.when_durable(results.append)
        await log.drain()
        files.full = True
        log.add(q, msg(b"lost"))
        log.when_durable(results.append)
        await log.drain()
        files.full = False
        log.add(q, msg(b"still-refused"))  # within the retry delay: refused at once
        log.when_durable(results.append)
        await log.drain()
        await asyncio.sleep(0.3)
        log.add(q, msg(b"ok-2"))
        log.when_durable(results.append)
        await log.drain()
        log.close()
        return results, log.error

    results, error = run(go())
    assert results == [True, False, False, True]
    assert error is None
    # The failed batch was cut off the file: the log is clean and holds what was confirmed.
    assert _recover(d)[0] == [b"ok-1", b"ok-2"]


def test_sync_none_writes_without_fsync(tmp_path) -> None:
    d = str(tmp_path / "msgs")
    calls = []

    class CountingFiles(Files):
        def fsync(self, fd):
            calls.append(fd)
            super().fsync(fd)

    run(_write(d, [b"a", b"b"], files=CountingFiles(), sync="none"))
    # The one fsync is the new segment's header (a segment must never exist without
    # it); the records themselves are written and never synced.
    assert len(calls) == 1
    calls.clear()
    run(_write(str(tmp_path / "m2"), [b"a", b"b"], files=CountingFiles(), sync="always"))
    assert len(calls) >= 2  # the header, then every batch of records
    assert _recover(d)[0] == [b"a", b"b"]


def test_unknown_sync_policy_is_refused(tmp_path) -> None:
    async def go():
        with pytest.raises(ValueError):
            MessageLog(str(tmp_path), asyncio.get_running_loop(), sync="sometimes")
    run(go())


def test_one_unconsumed_message_pins_only_its_own_segment(tmp_path) -> None:
    """Work flows through (publish, then ack) while one early message is never
    consumed: the segments the flow leaves behind are deleted anyway."""
    d = str(tmp_path / "msgs")

    async def go():
        log = MessageLog(d, asyncio.get_running_loop(), segment_size=2000)
        log.recover()
        q = Q(7)
        stuck = msg(b"stuck" * 10)
        log.add(q, stuck)
        await log.drain()
        for i in range(300):
            m = msg(bytes([i % 256]) * 100)
            log.add(q, m)
            await log.drain()
            log.remove(q, m)
        await log.drain()
        await log.drain()
        segments = len(_segments(d))
        log.close()
        return segments

    segments = run(go())
    assert segments <= 3, f"{segments} segments kept for one live message"
    assert _recover(d)[0] == [b"stuck" * 10]


def test_a_segment_holding_acks_for_an_older_live_segment_is_kept(tmp_path) -> None:
    """The ack cancelling a message of an older segment must outlive that segment."""
    d = str(tmp_path / "msgs")

    async def go():
        log = MessageLog(d, asyncio.get_running_loop(), segment_size=300)
        log.recover()
        q = Q(7)
        a, b = msg(b"a" * 100), msg(b"b" * 100)
        log.add(q, a)
        log.add(q, b)
        await log.drain()  # a and b share the first segment
        for i in range(5):  # push the head on to newer segments
            m = msg(bytes([65 + i]) * 200)
            log.add(q, m)
            await log.drain()
            log.remove(q, m)
        log.remove(q, a)  # this ACK lands in a newer segment while b keeps the first alive
        await log.drain()
        for i in range(5):
            m = msg(bytes([70 + i]) * 200)
            log.add(q, m)
            await log.drain()
            log.remove(q, m)
        await log.drain()
        log.close()

    run(go())
    assert _recover(d)[0] == [b"b" * 100]  # "a" must not come back


def test_purged_paged_message_stays_purged_after_its_ack_segment_is_reclaimed(tmp_path) -> None:
    """remove_id (purge, queue deletion of paged-out entries) writes an ACK into a newer
    segment; that segment must outlive the one holding the PUBLISH it cancels."""
    d = str(tmp_path / "msgs")

    async def go():
        log = MessageLog(d, asyncio.get_running_loop(), segment_size=300)
        log.recover()
        q = Q(7)
        purged, kept = msg(b"p" * 100), msg(b"k" * 100)
        log.add(q, purged)
        log.add(q, kept)
        await log.drain()  # both in the first segment; "kept" keeps it alive
        for i in range(3):
            m = msg(bytes([65 + i]) * 200)
            log.add(q, m)
            await log.drain()
            log.remove(q, m)
        log.remove_id(q, purged.msg_id)  # as a purge of a paged-out entry does
        await log.drain()
        for i in range(5):  # the segment holding that ACK dies and is reclaimed
            m = msg(bytes([70 + i]) * 200)
            log.add(q, m)
            await log.drain()
            log.remove(q, m)
        await log.settle()
        log.close()

    run(go())
    assert _recover(d)[0] == [b"k" * 100]  # the purged message must not come back


def test_a_dead_segment_whose_targets_are_gone_is_deleted_and_stop_does_not_hang(tmp_path) -> None:
    """A dead segment's ACKs referred to a segment deleted since, while an older live
    segment still exists: nothing is left to carry forward, so it goes at once (an
    empty carry-forward used to wait for a write that never came, hanging settle())."""
    d = str(tmp_path / "msgs")

    async def go():
        log = MessageLog(d, asyncio.get_running_loop(), segment_size=300)
        log.recover()
        q = Q(7)
        x, b, c, e = (msg(bytes([n]) * 200) for n in b"xbce")
        log.add(q, x)
        await log.drain()  # segment A
        log.add(q, b)
        await log.drain()  # segment B: never consumed
        log.add(q, c)
        log.remove(q, x)
        await log.drain()  # segment C: c, and the ACK of x (refers to A); A is deleted
        log.add(q, e)
        log.remove(q, c)
        await log.drain()  # segment D (head): C is now dead, its target A gone, B alive
        await asyncio.wait_for(log.settle(), 5)
        names = _segments(d)
        log.close()
        return names

    names = run(go())
    assert len(names) == 2, names  # B (live) and the head
    assert _recover(d)[0] == [b"b" * 200, b"e" * 200]


def test_a_batch_refused_during_the_retry_pause_leaves_its_messages_unstored(tmp_path) -> None:
    """Nacked without touching the disk (the disk failed a moment ago): its messages
    are off the store's books like those of a batch that failed writing, so they
    neither hold up paging (no position will ever come) nor keep a segment alive."""

    class FailSecondWrite(Files):
        retry_after = 0.3
        writes = 0

        def writev(self, fd, buffers):
            FailSecondWrite.writes += 1
            if FailSecondWrite.writes == 2:
                raise OSError(errno.EIO, "Input/output error")
            super().writev(fd, buffers)

    async def go():
        log = MessageLog(str(tmp_path / "msgs"), asyncio.get_running_loop(),
                         files=FailSecondWrite())
        log.recover()
        q = Q(1)
        results = []
        kept = msg(b"kept")
        log.add(q, kept)
        await log.drain()
        failed, refused = msg(b"failed"), msg(b"refused")
        for m in (failed, refused):  # the first fails writing, the second is refused
            log.add(q, m)
            log.when_durable(results.append)
            await log.drain()
        await asyncio.sleep(0.4)
        later = msg(b"later")
        log.add(q, later)
        log.when_durable(results.append)
        await log.drain()
        live = sum(s.live for s in log.segments)
        log.close()
        return results, failed.msg_id, refused.msg_id, later.store_pos, live

    results, failed_ref, refused_ref, later_pos, live = run(go())
    assert results == [False, False, True]
    assert failed_ref is None and refused_ref is None
    assert later_pos is not None
    assert live == 2  # kept and later


def test_definitions_changed_during_a_write_are_written_without_a_waiter(tmp_path) -> None:
    """A nowait declare or an auto-delete made while a write runs: nobody waits for it,
    and it still reaches the disk (before, it waited for the next change, forever)."""
    import time

    from hutch.store.definitions import DefinitionsWriter

    class SlowRename(Files):
        def replace(self, src, dst):
            time.sleep(0.2)
            super().replace(src, dst)

    async def go():
        writer = DefinitionsWriter(asyncio.get_running_loop(), SlowRename(), str(tmp_path), dict)
        writer.changed()
        await asyncio.sleep(0.05)  # its write is under way
        writer.changed()
        deadline = time.monotonic() + 5
        while writer.synced < writer.version and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        out = (writer.version, writer.synced)
        writer.close()
        return out

    version, synced = run(go())
    assert synced == version == 2


def test_salvage_interrupted_by_a_short_write_is_redone_in_a_fresh_segment(tmp_path) -> None:
    """A real full disk writes part of the salvage segment, then fails.  The next start
    must not append to that torn file under the same name (it used to: a second header
    in the middle, messages read back from wrong offsets); it salvages into a segment
    named past every existing one and recovers what a start without the fault does."""
    import shutil

    d = str(tmp_path / "msgs")
    bodies = [bytes([65 + i]) * 100 for i in range(9)]

    async def write():
        log = MessageLog(d, asyncio.get_running_loop(), segment_size=3 * 160)
        log.recover()
        q = Q(7)
        for b in bodies:
            log.add(q, msg(b))
            await log.drain()
        log.close()

    run(write())
    segs = sorted(n for n in os.listdir(d) if n.endswith(".seg"))
    assert len(segs) >= 3
    middle = os.path.join(d, segs[1])
    data = bytearray(open(middle, "rb").read())
    data[-3] ^= 0xFF  # the middle segment's last record: it is quarantined, the rest salvaged
    open(middle, "wb").write(bytes(data))
    shutil.copytree(d, str(tmp_path / "copy"))

    class ShortWrite(Files):
        armed = True

        def write(self, fd, data):
            if ShortWrite.armed and len(data) > len(SEGMENT_HEADER):  # the salvage segment
                ShortWrite.armed = False
                os.write(fd, bytes(data)[: len(data) * 2 // 3])
                raise OSError(errno.ENOSPC, "No space left on device")
            super().write(fd, data)

    def recover(path: str, files: Files) -> list[bytes | None]:
        async def go():
            log = MessageLog(path, asyncio.get_running_loop(), files=files)
            try:
                rec = log.recover()
                pubs = log.read_entries(rec[7].entries if 7 in rec else [])
            finally:
                log.close()
            return [p.body[:1] if p is not None else None for p in pubs]
        return run(go())

    expected = recover(str(tmp_path / "copy"), Files())
    assert len(expected) == len(bodies) - 1  # the damaged record alone is lost
    with pytest.raises(OSError):
        recover(d, ShortWrite())
    assert recover(d, Files()) == expected
    assert recover(d, Files()) == expected


def test_a_record_cut_off_under_a_paged_entry_reads_as_lost_not_as_a_crash(tmp_path) -> None:
    """A segment shortened behind the log's back (the entry points past its end, or a
    few bytes before it): the read reports the message lost, it does not raise."""
    path = str(tmp_path / "msgs")

    async def go() -> list[object]:
        log = MessageLog(path, asyncio.get_running_loop())
        log.recover()
        q = Q(7)
        msgs = [msg(b"a" * 100), msg(b"b" * 100)]
        for m in msgs:
            log.add(q, m)
        await log.drain()
        seg = _segments(path)[-1]
        entries = [(m.msg_id << 32) | m.store_pos for m in msgs]
        with open(seg, "r+b") as f:
            f.truncate(msgs[1].store_pos + 2)  # the second record's length field, cut
        got = log.read_entries(entries)
        log.close()
        return got

    got = run(go())
    assert got[0] is not None and got[0].body == b"a" * 100
    assert got[1] is None
