"""Firing a delayed message through the log (store/fired.py): a power cut at any byte
of the fire's batch leaves either the delayed message or all its copies, never both,
never neither — at the first recovery and at every one after it."""

from __future__ import annotations

import asyncio
import os
import shutil

from hutch.store import records
from hutch.store.log import MessageLog
from tests.store.test_log import Q, msg, run

DX = 9  # the delayed exchange's store id
QA, QB = 7, 8  # two durable destination queues


async def _write_and_fire(path: str) -> tuple[int, int, int, list[int]]:
    """A delayed message, then its fire into QA and QB; returns (its id, the last
    segment's size before and after the fire batch, the copies' ids)."""
    log = MessageLog(path, asyncio.get_running_loop())
    log.recover()
    dx = Q(DX)
    delayed = msg(b"delayed")
    log.add(dx, delayed, 1234567)
    await log.drain()
    before = log.segments[-1].size
    delayed_id = delayed.msg_id
    log.begin_fire(DX, delayed_id)
    a, b = msg(b"copy-a"), msg(b"copy-b")
    log.add(Q(QA), a)
    log.add(Q(QB), b)
    log.end_fire()
    log.remove(dx, delayed)
    await log.drain()
    after = log.segments[-1].size
    log.close()
    return delayed_id, before, after, [a.msg_id, b.msg_id]


def _state(path: str, settle: bool) -> tuple[set[int], set[int], int]:
    """(live delayed ids, live copy ids, due time) after a recovery; ``settle``:
    also write the ACKs recovery asks for, as the node does at start."""
    async def go():
        log = MessageLog(path, asyncio.get_running_loop())
        rec = log.recover()
        delayed = {e >> 32 for e in rec[DX].entries} if DX in rec else set()
        copies = {e >> 32 for q in (QA, QB) if q in rec for e in rec[q].entries}
        due = 0
        if DX in rec:
            pub = log.read_entries(rec[DX].entries)[0]
            assert pub is not None
            due = pub.expires_ms
        if settle:
            log.settle_fired(log.fired_acks)
            await log.drain()
        log.close()
        return delayed, copies, due
    return run(go())


def test_fired_record_layout_round_trips() -> None:
    entries = [(1, 2, [3, 4]), (5, 6, [])]
    rec = records.encode_fired(42, entries)
    rtype, seq, start, _end = records.read_record(rec, 0)
    assert (rtype, seq) == (records.FIRED, 42)
    assert records.decode_fired(rec, start) == entries


def test_a_cut_at_any_byte_of_a_fire_neither_loses_nor_duplicates(tmp_path) -> None:
    src = str(tmp_path / "src")
    delayed_id, before, after, copies = run(_write_and_fire(src))
    seg = sorted(n for n in os.listdir(src) if n.endswith(".seg"))[-1]
    outcomes = set()
    for cut in range(before, after + 1):
        d = str(tmp_path / f"cut{cut}")
        shutil.copytree(src, d)
        os.truncate(os.path.join(d, seg), cut)
        first = _state(d, settle=True)
        again = _state(d, settle=False)  # a second start (after the settling ACKs)
        assert first == again, cut
        live_delayed, live_copies, due = first
        if live_delayed:
            assert live_delayed == {delayed_id} and live_copies == set(), cut
            assert due == 1234567
            outcomes.add("not fired")
        else:
            assert live_copies == set(copies), cut
            outcomes.add("fired")
    assert outcomes == {"fired", "not fired"}


def test_a_torn_fires_missing_seqs_are_never_handed_out_again(tmp_path) -> None:
    """Else a later PUBLISH would take a missing copy's seq and make the torn fire
    look complete at the next recovery (the delayed message would be lost)."""
    src = str(tmp_path / "src")
    _delayed_id, before, _after, copies = run(_write_and_fire(src))
    seg = sorted(n for n in os.listdir(src) if n.endswith(".seg"))[-1]
    # Cut right after the first copy's record: FIRED and copy a made it, b did not.
    fired_len = len(records.encode_fired(0, [(DX, 1, copies)]))

    async def go():
        log = MessageLog(src, asyncio.get_running_loop())
        log.recover()
        log.close()
        return log.seq
    os.truncate(os.path.join(src, seg), before + fired_len + 1)  # mid copy a: torn
    assert run(go()) >= copies[-1]
