"""The clean-shutdown snapshot: a clean stop lets the next start skip the log scan.

Every test checks what a client sees (bodies, order, redelivered flags) and which
path recovery took (the broker logs "(shutdown snapshot)" or "(log scan)").
"""

from __future__ import annotations

import os
import shutil

import pika
import pytest

from hutch.broker.queue import WINDOW, WINDOW_BYTES
from tests.brokerproc import HutchProcess, drain

pytestmark = pytest.mark.hutch_only

N = WINDOW * 2 + 77  # some of the backlog is paged out


def _snapshot(proc: HutchProcess) -> str:
    assert proc.data_dir is not None
    return os.path.join(proc.data_dir, "msgs", "snapshot")


def _recovered_by(proc: HutchProcess) -> str:
    """How the latest start recovered: 'shutdown snapshot' or 'log scan'."""
    line = [x for x in proc.log_lines if "<hutch.broker> recovered" in x][-1]
    return "shutdown snapshot" if "(shutdown snapshot)" in line else \
        "log scan" if "(log scan)" in line else line


def _fill(proc: HutchProcess) -> tuple[list[bytes], list[bytes]]:
    """Queue 'a': N persistent messages, a transient one in the middle, the first one
    delivered and requeued (redelivered), the second acked.  Queue 'b': 3 messages."""
    conn = pika.BlockingConnection(pika.URLParameters(proc.url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("a", durable=True)
    ch.queue_declare("b", durable=True)
    # Big enough that the queue pages at WINDOW messages.
    a = [f"a{i:05d}".encode().ljust(WINDOW_BYTES // WINDOW, b".") for i in range(N)]
    b = [b"b0", b"b1", b"b2"]
    persistent = pika.BasicProperties(delivery_mode=2)
    for i, body in enumerate(a):
        ch.basic_publish("", "a", body, persistent)
        if i == N // 2:
            ch.basic_publish("", "a", b"transient", pika.BasicProperties(delivery_mode=1))
    for body in b:
        ch.basic_publish("", "b", body, persistent)
    ch.basic_get("a")  # a[0]: unacked, requeued when the connection closes
    m, _, _ = ch.basic_get("a")
    ch.basic_ack(m.delivery_tag)  # a[1]: gone
    conn.close()
    return a, b


def _contents(proc: HutchProcess) -> dict[str, list[tuple[bytes, bool]]]:
    conn = pika.BlockingConnection(pika.URLParameters(proc.url))
    ch = conn.channel()
    out = {q: drain(ch, q) for q in ("a", "b")}
    conn.close()
    return out


def _expected(a: list[bytes], b: list[bytes]) -> dict[str, list[tuple[bytes, bool]]]:
    return {"a": [(a[0], True)] + [(x, False) for x in a[2:]], "b": [(x, False) for x in b]}


def test_clean_restart_loads_the_snapshot_and_deletes_it(tmp_path) -> None:
    proc = HutchProcess(data_dir=str(tmp_path / "d"))
    proc.start()
    try:
        a, b = _fill(proc)
        proc.stop()
        assert os.path.exists(_snapshot(proc))
        # The same data without the snapshot: recovery must scan and agree.
        shutil.copytree(tmp_path / "d", tmp_path / "scan")
        os.remove(tmp_path / "scan" / "msgs" / "snapshot")
        proc.start()
        assert proc.wait_for_log(f"recovered {N + 2} messages in 2 durable queues")
        assert _recovered_by(proc) == "shutdown snapshot"
        # Deleted before anything new is written: a crash from here on must scan.
        assert not os.path.exists(_snapshot(proc))
        got = _contents(proc)
        assert got == _expected(a, b)
    finally:
        proc.stop()
    scan = HutchProcess(data_dir=str(tmp_path / "scan"))
    scan.start()
    try:
        assert _recovered_by(scan) == "log scan"
        assert _contents(scan) == got
    finally:
        scan.stop()


def test_snapshot_twice_in_a_row_then_consume_and_crash(tmp_path) -> None:
    """Snapshot -> start -> clean stop -> start: still right; acks after a snapshot
    start survive a kill -9 (the scan, not the old snapshot, decides)."""
    proc = HutchProcess(data_dir=str(tmp_path / "d"))
    proc.start()
    try:
        a, b = _fill(proc)
        proc.stop()
        proc.start()
        proc.stop()
        proc.start()
        assert _recovered_by(proc) == "shutdown snapshot"
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.confirm_delivery()
        for _ in range(10):
            m, _, _ = ch.basic_get("a")
            ch.basic_ack(m.delivery_tag)
        # A confirmed publish after the acks: its batch carries them to disk.
        ch.basic_publish("", "b", b"b3", pika.BasicProperties(delivery_mode=2))
        conn.close()
        proc.kill()
        proc.start()
        assert _recovered_by(proc) == "log scan"
        exp = _expected(a, b)
        exp["a"] = exp["a"][10:]
        exp["b"].append((b"b3", False))
        assert _contents(proc) == exp
    finally:
        proc.stop()


def test_stale_snapshot_is_ignored(tmp_path) -> None:
    proc = HutchProcess(data_dir=str(tmp_path / "d"))
    proc.start()
    try:
        a, b = _fill(proc)
        proc.stop()
        old = open(_snapshot(proc), "rb").read()
        proc.start()
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.confirm_delivery()
        m, _, _ = ch.basic_get("b")
        ch.basic_ack(m.delivery_tag)
        ch.basic_publish("", "b", b"b3", pika.BasicProperties(delivery_mode=2))
        conn.close()
        proc.kill()
        with open(_snapshot(proc), "wb") as f:  # yesterday's picture, today's log
            f.write(old)
        proc.start()
        assert proc.wait_for_log("shutdown snapshot does not match the log")
        assert _recovered_by(proc) == "log scan"
        exp = _expected(a, b)
        exp["b"] = [(b"b1", False), (b"b2", False), (b"b3", False)]
        assert _contents(proc) == exp
    finally:
        proc.stop()


def test_damaged_snapshot_is_ignored(tmp_path) -> None:
    proc = HutchProcess(data_dir=str(tmp_path / "d"))
    proc.start()
    try:
        a, b = _fill(proc)
        proc.stop()
        data = bytearray(open(_snapshot(proc), "rb").read())
        data[len(data) // 2] ^= 0x40
        with open(_snapshot(proc), "wb") as f:
            f.write(data)
        proc.start()
        assert proc.wait_for_log("ignoring a damaged shutdown snapshot")
        assert _recovered_by(proc) == "log scan"
        assert _contents(proc) == _expected(a, b)
    finally:
        proc.stop()


def test_redelivered_flags_of_paged_entries_survive_a_snapshot(tmp_path) -> None:
    """Delivered messages that a scan recovers sit in the backlog as bare entries; a
    clean stop must still remember they were delivered."""
    proc = HutchProcess(data_dir=str(tmp_path / "d"))
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("r", durable=True)
        bodies = [f"r{i}".encode() for i in range(50)]
        for body in bodies:
            ch.basic_publish("", "r", body, pika.BasicProperties(delivery_mode=2))
        for _ in range(3):
            ch.basic_get("r")  # delivered, never acked
        # Confirmed after the gets: their DELIVER records are on disk too (in order).
        ch.basic_publish("", "r", b"last", pika.BasicProperties(delivery_mode=2))
        proc.kill()  # no snapshot: the scan finds the DELIVER records
        proc.start()
        assert _recovered_by(proc) == "log scan"
        proc.stop()
        proc.start()
        assert _recovered_by(proc) == "shutdown snapshot"
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        got = drain(conn.channel(), "r")
        conn.close()
        assert got == [(x, i < 3) for i, x in enumerate([*bodies, b"last"])]
    finally:
        proc.stop()
