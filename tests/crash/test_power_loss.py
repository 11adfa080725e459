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


@pytest.mark.hutch_only
def test_power_loss_at_random_points_keeps_every_confirmed_message(tmp_path) -> None:
    rng = random.Random(99)
    journal = str(tmp_path / "journal")
    env = {"HUTCH_STORE_FILES": "tests.crash.seams:JournalFiles",
           "HUTCH_POWERLOSS_JOURNAL": journal}
    proc = HutchProcess(env=env)
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        conn.channel().queue_declare(QUEUE, durable=True)
        conn.close()
        data_dirs = [proc.data_dir, os.path.join(proc.data_dir, "msgs")]
        total = 0
        for round_no in range(12):
            confirmed: set[str] = set()
            acked: set[str] = set()
            stop = threading.Event()
            threads = [threading.Thread(target=_publisher,
                                        args=(proc.url, f"r{round_no}p{i}", confirmed, stop))
                       for i in range(2)]
            if round_no % 2:  # every other round a consumer acks alongside the publishers
                threads.append(threading.Thread(target=_consumer, args=(proc.url, acked, stop)))
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.1, 0.5))
            proc.kill()
            stop.set()
            for t in threads:
                t.join(10)
            simulate_power_loss(journal, data_dirs, rng)
            proc.start()
            bodies = [b for b, _ in _drain(proc.url)]
            missing = confirmed - acked - set(bodies)
            assert not missing, f"round {round_no}: power loss lost {len(missing)} confirmed messages"
            assert len(bodies) == len(set(bodies))
            total += len(confirmed)
        assert total > 500
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
