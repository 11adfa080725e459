"""Durable priority queues across restarts: a clean stop (the shutdown snapshot lists
each priority level's run of entries) and kill -9 (the log scan reads every message's
priority from its header) both bring the messages back in priority order, FIFO within
a level, with a backlog paged out at every level.  Hutch only: private brokers."""

from __future__ import annotations

import os
import shutil

import pika
import pytest

from hutch.broker.queue import WINDOW, WINDOW_BYTES
from hutch.store import snapshot
from tests.brokerproc import HutchProcess, drain

pytestmark = pytest.mark.hutch_only

PAD = WINDOW_BYTES // WINDOW  # bodies this big page out beyond WINDOW per level
PER_LEVEL = WINDOW + 300
# (property sent, level it lands in) for x-max-priority 9: absent -> 0, 200 -> 9.
PRIORITIES = [(0, 0), (3, 3), (9, 9), (None, 0), (200, 9)]


def _recovered_by(proc: HutchProcess) -> str:
    line = [x for x in proc.log_lines if "<hutch.broker> recovered" in x][-1]
    return "shutdown snapshot" if "(shutdown snapshot)" in line else \
        "log scan" if "(log scan)" in line else line


def _fill(proc: HutchProcess) -> list[tuple[bytes, bool]]:
    """Queue 'p' (x-max-priority 9): messages over three levels published interleaved,
    a transient one among them; the first of the top level is taken and requeued
    (redelivered), the second acked.  Returns what the queue should hold, in order."""
    conn = pika.BlockingConnection(pika.URLParameters(proc.url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("p", durable=True, arguments={"x-max-priority": 9})
    by_level: dict[int, list[bytes]] = {0: [], 3: [], 9: []}
    n = 0
    while n < PER_LEVEL * 3:
        for prio, level in PRIORITIES:
            body = f"L{level}-{n:06d}".encode().ljust(PAD, b".")
            ch.basic_publish("", "p", body, pika.BasicProperties(delivery_mode=2, priority=prio))
            by_level[level].append(body)
            n += 1
            if n == PER_LEVEL:
                ch.basic_publish("", "p", b"transient",
                                 pika.BasicProperties(delivery_mode=1, priority=9))
    _m, _p, first = ch.basic_get("p")  # unacked: requeued when the connection closes
    m, _p, second = ch.basic_get("p")
    ch.basic_ack(m.delivery_tag)
    assert (first, second) == tuple(by_level[9][:2])
    conn.close()
    top = by_level[9]
    return ([(top[0], True)] + [(b, False) for b in top[2:]]
            + [(b, False) for b in by_level[3]] + [(b, False) for b in by_level[0]])


def _contents(proc: HutchProcess, queue: str = "p") -> list[tuple[bytes, bool]]:
    conn = pika.BlockingConnection(pika.URLParameters(proc.url))
    ch = conn.channel()
    count = ch.queue_declare(queue, durable=True, passive=True).method.message_count
    out = drain(ch, queue)
    assert count == len(out)
    conn.close()
    return out


def test_clean_restart_keeps_priority_order_from_the_snapshot(tmp_path) -> None:
    proc = HutchProcess(data_dir=str(tmp_path / "d"))
    proc.start()
    try:
        expected = _fill(proc)
        proc.stop()
        snap_path = tmp_path / "d" / "msgs" / "snapshot"
        snap = snapshot.decode(snap_path.read_bytes())
        [q] = snap.queues
        assert q.runs is not None and [r[0] for r in q.runs] == [9, 3, 0]
        # The same data without the snapshot: the scan must agree.
        shutil.copytree(tmp_path / "d", tmp_path / "scan")
        os.remove(tmp_path / "scan" / "msgs" / "snapshot")
        proc.start()
        assert _recovered_by(proc) == "shutdown snapshot"
        assert _contents(proc) == expected
    finally:
        proc.stop()
    scan = HutchProcess(data_dir=str(tmp_path / "scan"))
    scan.start()
    try:
        assert _recovered_by(scan) == "log scan"
        assert _contents(scan) == expected
    finally:
        scan.stop()


def test_kill9_keeps_priority_order_from_the_log(tmp_path) -> None:
    proc = HutchProcess(data_dir=str(tmp_path / "d"))
    proc.start()
    try:
        expected = _fill(proc)
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.confirm_delivery()
        # Confirmed: its batch also carries the earlier DELIVER and ACK records to disk.
        ch.basic_publish("", "p", b"last-3", pika.BasicProperties(delivery_mode=2, priority=3))
        conn.close()
        end_of_level_3 = 1 + max(i for i, (b, _) in enumerate(expected) if b.startswith(b"L3-"))
        expected.insert(end_of_level_3, (b"last-3", False))
        proc.kill()
        proc.start()
        assert _recovered_by(proc) == "log scan"
        assert _contents(proc) == expected
    finally:
        proc.stop()


def test_restarts_after_partly_consuming_every_level(tmp_path) -> None:
    """Take messages off the top, let a consumer requeue some, restart twice (snapshot,
    then kill -9 after more acks): what remains comes back in order each time."""
    proc = HutchProcess(data_dir=str(tmp_path / "d"))
    proc.start()
    try:
        expected = _fill(proc)
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.confirm_delivery()
        # The whole top level (and the transient message in it) and some of level 3.
        took = sum(1 for b, _ in expected if b.startswith(b"L9-")) + 1 + 10
        taken = []
        for _ in range(took):
            m, _p, body = ch.basic_get("p")
            taken.append(body)
            ch.basic_ack(m.delivery_tag)
        assert b"transient" in taken
        expected = expected[took - 1:]
        conn.close()
        proc.stop()
        proc.start()
        assert _recovered_by(proc) == "shutdown snapshot"
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.confirm_delivery()
        got = [ch.basic_get("p") for _ in range(7)]
        assert [b for _m, _p, b in got] == [b for b, _ in expected[:7]]
        for i in (0, 1, 3, 4, 6):
            ch.basic_ack(got[i][0].delivery_tag)
        # 2 and 5 stay unacked: requeued to their places (redelivered) when it closes.
        expected = [(expected[2][0], True), (expected[5][0], True), *expected[7:]]
        ch.basic_publish("", "p", b"hi", pika.BasicProperties(delivery_mode=2, priority=9))
        conn.close()
        proc.kill()
        proc.start()
        assert _recovered_by(proc) == "log scan"
        assert _contents(proc) == [(b"hi", False), *expected]
    finally:
        proc.stop()


def test_a_snapshot_without_levels_is_not_trusted_for_a_priority_queue(tmp_path) -> None:
    """A version 1 snapshot (written by a Hutch that ignored x-max-priority) has the
    queue's entries in publish order: recovery scans the log instead."""
    proc = HutchProcess(data_dir=str(tmp_path / "d"))
    proc.start()
    try:
        expected = _fill(proc)
        proc.stop()
        path = tmp_path / "d" / "msgs" / "snapshot"
        snap = snapshot.decode(path.read_bytes())
        for q in snap.queues:
            q.runs = None
        snap.counts = {}
        data = snapshot.encode(snap, version=1)
        assert data[8:12] == (1).to_bytes(4, "big")  # version 1
        path.write_bytes(data)
        proc.start()
        assert proc.wait_for_log("priority queue without levels")
        assert _recovered_by(proc) == "log scan"
        assert _contents(proc) == expected
    finally:
        proc.stop()


def test_quorum_queue_priorities_survive_kill9(tmp_path) -> None:
    proc = HutchProcess(data_dir=str(tmp_path / "d"))
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("qq", durable=True, arguments={"x-queue-type": "quorum"})
        for body, prio in [(b"a3", 3), (b"b-", None), (b"c31", 31), (b"d99", 99), (b"e4", 4),
                           (b"f5", 5)]:
            ch.basic_publish("", "qq", body, pika.BasicProperties(delivery_mode=2, priority=prio))
        conn.close()
        proc.kill()
        proc.start()
        assert [b for b, _ in _contents(proc, "qq")] == [b"c31", b"d99", b"f5", b"b-", b"e4",
                                                          b"a3"]
    finally:
        proc.stop()
