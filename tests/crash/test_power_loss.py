"""A simulated power cut at random moments loses no confirmed message.

kill -9 keeps the page cache, so it cannot catch a missing fsync.  Here the
broker runs with ``JournalFiles`` (tests/crash/seams.py), and after each
kill -9 every file is cut back to what had been fsync'd (and every rename or
new file whose directory was not fsync'd is undone) before the restart.
"""

from __future__ import annotations

import os
import random
import threading
import time

import pika
import pytest

from tests.brokerproc import HutchProcess
from tests.crash.seams import simulate_power_loss
from tests.crash.test_kill9 import QUEUE, _consumer, _drain, _publisher

KEEP = "kept_q"  # nobody consumes it: every round has confirmed messages that must survive


@pytest.mark.hutch_only
def test_power_loss_at_random_points_keeps_every_confirmed_message(tmp_path) -> None:
    rng = random.Random(99)
    journal = str(tmp_path / "journal")
    env = {"HUTCH_STORE_FILES": "tests.crash.seams:JournalFiles",
           "HUTCH_POWERLOSS_JOURNAL": journal}
    # Small segments: the log rolls over, reclaims and carries acks forward between cuts.
    proc = HutchProcess("--segment-size", "4k", env=env)
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        conn.channel().queue_declare(QUEUE, durable=True)
        conn.channel().queue_declare(KEEP, durable=True)
        conn.close()
        data_dirs = [proc.data_dir, os.path.join(proc.data_dir, "msgs")]
        total = 0
        segments_seen: set[str] = set()
        for round_no in range(12):
            confirmed: set[str] = set()
            acked: set[str] = set()
            stop = threading.Event()
            threads = [threading.Thread(target=_publisher,
                                        args=(proc.url, f"r{round_no}p{i}", confirmed, stop,
                                              (QUEUE, KEEP)))
                       for i in range(2)]
            if round_no % 2:  # every other round a consumer acks alongside the publishers
                threads.append(threading.Thread(target=_consumer, args=(proc.url, acked, stop)))
            for t in threads:
                t.start()
            deadline = time.monotonic() + 30
            while len(confirmed) < 50:  # a barrier, not a guess: something to lose
                assert time.monotonic() < deadline, "no publish was confirmed"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
            proc.kill()
            stop.set()
            for t in threads:
                t.join(10)
            segments_seen.update(os.listdir(data_dirs[1]))
            simulate_power_loss(journal, data_dirs, rng)
            proc.start()
            must_survive = confirmed - acked
            assert must_survive, f"round {round_no} checks nothing"
            bodies = [b for b, _ in _drain(proc.url, (QUEUE, KEEP))]
            missing = must_survive - set(bodies)
            assert not missing, f"round {round_no}: power loss lost {len(missing)} confirmed messages"
            assert len(bodies) == len(set(bodies))
            total += len(must_survive)
        assert total > 500
        assert len([n for n in segments_seen if n.endswith(".seg")]) > 12, "the log never rolled over"
    finally:
        proc.stop()


@pytest.mark.hutch_only
def test_power_loss_right_after_declare_keeps_the_queue(tmp_path) -> None:
    journal = str(tmp_path / "journal")
    env = {"HUTCH_STORE_FILES": "tests.crash.seams:JournalFiles",
           "HUTCH_POWERLOSS_JOURNAL": journal}
    proc = HutchProcess(env=env)
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        for i in range(5):
            ch.queue_declare(f"declared-{i}", durable=True)  # declare-ok = on disk
        proc.kill()
        simulate_power_loss(journal, [proc.data_dir, os.path.join(proc.data_dir, "msgs")],
                            random.Random(5))
        proc.start()
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        for i in range(5):
            ch.queue_declare(f"declared-{i}", durable=True, passive=True)
        conn.close()
    finally:
        proc.stop()


@pytest.mark.hutch_only
def test_power_loss_keeps_delivery_counts_written_before_a_confirm(tmp_path) -> None:
    """RETURNED records (a message's delivery count) go through the same group commit
    as publishes: every reject made before a confirmed publish survives a power cut;
    rejects after it may be lost, but a count never goes beyond the rejects made."""
    rng = random.Random(7)
    journal = str(tmp_path / "journal")
    env = {"HUTCH_STORE_FILES": "tests.crash.seams:JournalFiles",
           "HUTCH_POWERLOSS_JOURNAL": journal}
    proc = HutchProcess("--segment-size", "4k", env=env)
    proc.start()
    data_dirs = [proc.data_dir, os.path.join(proc.data_dir, "msgs")]
    rejects: dict[bytes, int] = {}
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("pq", durable=True, arguments={"x-queue-type": "quorum",
                                                        "x-delivery-limit": 10_000})
        ch.queue_declare("sync", durable=True)
        for i in range(5):
            ch.basic_publish("", "pq", f"m{i}".encode(), pika.BasicProperties(delivery_mode=2))
        conn.close()
        for round_no in range(6):
            conn = pika.BlockingConnection(pika.URLParameters(proc.url))
            ch = conn.channel()
            ch.confirm_delivery()
            for _ in range(rng.randint(1, 20)):
                taken = [ch.basic_get("pq") for _ in range(rng.randint(1, 5))]
                for method, _props, body in taken:
                    ch.basic_reject(method.delivery_tag, requeue=True)
                    rejects[body] = rejects.get(body, 0) + 1
            ch.basic_publish("", "sync", b"s", pika.BasicProperties(delivery_mode=2))
            durable = dict(rejects)  # everything before the confirm is on disk
            for _ in range(rng.randint(0, 10)):  # these may or may not make it
                method, _props, body = ch.basic_get("pq")
                ch.basic_nack(method.delivery_tag, requeue=True)  # not counted
                method, _props, body = ch.basic_get("pq")
                ch.basic_reject(method.delivery_tag, requeue=True)
                rejects[body] = rejects.get(body, 0) + 1
            time.sleep(rng.uniform(0.0, 0.05))
            proc.kill()
            simulate_power_loss(journal, data_dirs, rng)
            proc.start()
            conn = pika.BlockingConnection(pika.URLParameters(proc.url))
            ch = conn.channel()
            seen = {}
            for _ in range(5):
                method, props, body = ch.basic_get("pq")
                seen[body] = (props.headers or {}).get("x-delivery-count") or 0
            assert len(seen) == 5, f"round {round_no}: messages lost"
            for body, count in seen.items():
                assert durable.get(body, 0) <= count <= rejects.get(body, 0), (round_no, body)
                rejects[body] = count  # what the broker now holds is the new truth
            conn.close()  # the five go back unacked: a failed delivery each
            for body in seen:
                rejects[body] += 1
            time.sleep(0.2)
    finally:
        proc.stop()
