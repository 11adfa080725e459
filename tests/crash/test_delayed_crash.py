"""kill -9 and simulated power cuts during a stream of delayed publishes and fires:
every confirmed delayed message is delivered exactly once, after any number of
restarts (never lost, never fired twice).

Publishers stream persistent messages with confirms into a durable x-delayed-message
exchange, with delays of 0-400 ms, so fires go on all the time; nobody consumes the
queue they land in.  The broker is killed at random moments (for the power cut, with
``JournalFiles``, every file is then cut back to what was fsync'd, torn pages
included: tests/crash/seams.py).  At the end every confirmed body must be in the
queue exactly once, and no body twice.  hutch_only: RabbitMQ 3.10 has no plugin.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter

import pika
import pytest

from tests.brokerproc import HutchProcess
from tests.crash.seams import simulate_power_loss

X = "dx.crash"
Q = "dx.crash.q"


def _publisher(url: str, tag: str, confirmed: set[str], stop: threading.Event,
               rng: random.Random) -> None:
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
        ch = conn.channel()
        ch.confirm_delivery()
        n = 0
        while not stop.is_set():
            body = f"{tag}-{n}"
            ch.basic_publish(X, "k", body.encode(), pika.BasicProperties(
                delivery_mode=2, headers={"x-delay": rng.randrange(0, 400)}))
            confirmed.add(body)
            n += 1
    except (pika.exceptions.AMQPError, OSError):
        pass  # the broker died under us: expected


@pytest.mark.hutch_only
@pytest.mark.parametrize("how", ["kill", "power"])
def test_every_confirmed_delayed_message_fires_exactly_once(tmp_path, how) -> None:
    rng = random.Random(16 if how == "kill" else 61)
    journal = str(tmp_path / "journal")
    env = ({"HUTCH_STORE_FILES": "tests.crash.seams:JournalFiles",
            "HUTCH_POWERLOSS_JOURNAL": journal} if how == "power" else {})
    # Small segments: fires, acks and reclaiming cross segment boundaries.
    proc = HutchProcess("--segment-size", "8k", env=env)
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.exchange_declare(X, "x-delayed-message", durable=True,
                            arguments={"x-delayed-type": "direct"})
        ch.queue_declare(Q, durable=True)
        ch.queue_bind(Q, X, "k")
        conn.close()
        confirmed: set[str] = set()
        for round_no in range(5):
            stop = threading.Event()
            before = len(confirmed)
            threads = [threading.Thread(target=_publisher,
                                        args=(proc.url, f"r{round_no}p{i}", confirmed, stop,
                                              random.Random(rng.random())))
                       for i in range(2)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 30
            while len(confirmed) < before + 40:  # something to lose
                assert time.monotonic() < deadline, "no publish was confirmed"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.4))
            proc.kill()
            stop.set()
            for t in threads:
                t.join(10)
            if how == "power":
                simulate_power_loss(journal, [proc.data_dir, os.path.join(proc.data_dir, "msgs")],
                                    rng)
            proc.start()
        time.sleep(0.6)  # the last round's delays are over
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        got: Counter[str] = Counter()
        while True:
            method, _props, body = ch.basic_get(Q, auto_ack=True)
            if method is None:
                break
            got[body.decode()] += 1
        conn.close()
        twice = [b for b, n in got.items() if n > 1]
        assert not twice, f"fired more than once: {twice[:5]}"
        lost = confirmed - set(got)
        assert not lost, f"{len(lost)} confirmed delayed messages lost: {sorted(lost)[:5]}"
    finally:
        proc.stop()
