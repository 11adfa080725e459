"""kill -9 of the broker mid-stream loses no confirmed message.

Publishers stream persistent messages with confirms, a consumer acks, and the
broker is SIGKILLed at a random moment; after a restart every message that
was confirmed and not acked must be in the queue.  (A message acked just
before the kill may come back too: the ack had not reached the disk.  That is
a duplicate, never a loss.)  Repeated 20 times against the same data dir.
"""

from __future__ import annotations

import random
import threading
import time

import pika
import pytest

from tests.brokerproc import HutchProcess, drain

QUEUE = "crash_q"


def _publisher(url: str, tag: str, confirmed: set[str], stop: threading.Event,
               queues: tuple[str, ...] = (QUEUE,)) -> None:
    """Publishes persistent messages with confirms, round-robin over ``queues``."""
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
        ch = conn.channel()
        ch.confirm_delivery()
        n = 0
        while not stop.is_set():
            body = f"{tag}-{n}"
            ch.basic_publish("", queues[n % len(queues)], body.encode(),
                             pika.BasicProperties(delivery_mode=2))
            confirmed.add(body)  # basic_publish returned: the broker confirmed it
            n += 1
    except (pika.exceptions.AMQPError, OSError):
        pass  # the broker died under us: expected


def _consumer(url: str, acked: set[str], stop: threading.Event) -> None:
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=20)
        for method, _props, body in ch.consume(QUEUE, inactivity_timeout=0.05):
            if stop.is_set():
                break
            if method is None:
                continue
            ch.basic_ack(method.delivery_tag)
            acked.add(body.decode())
    except (pika.exceptions.AMQPError, OSError):
        pass


def _drain(url: str, queues: tuple[str, ...] = (QUEUE,)) -> list[tuple[str, bool]]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    out = [(body.decode(), redelivered) for q in queues for body, redelivered in drain(ch, q)]
    conn.close()
    return out


@pytest.mark.hutch_only
def test_kill9_loop_loses_no_confirmed_message() -> None:
    rng = random.Random(1234)
    proc = HutchProcess()
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        conn.channel().queue_declare(QUEUE, durable=True)
        conn.close()
        total_confirmed = 0
        for round_no in range(20):
            confirmed: set[str] = set()
            acked: set[str] = set()
            stop = threading.Event()
            threads = [threading.Thread(target=_publisher, args=(proc.url, f"r{round_no}p{i}",
                                                                 confirmed, stop))
                       for i in range(2)]
            if round_no % 2:  # every other round a consumer acks alongside the publishers
                threads.append(threading.Thread(target=_consumer, args=(proc.url, acked, stop)))
            for t in threads:
                t.start()
            deadline = time.monotonic() + 30
            while len(confirmed) < 20:  # a barrier: something confirmed that must survive
                assert time.monotonic() < deadline, "no publish was confirmed"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.4))  # then a random moment to kill at
            proc.kill()
            stop.set()
            for t in threads:
                t.join(10)
            proc.start()
            found = _drain(proc.url)
            bodies = [b for b, _r in found]
            missing = confirmed - acked - set(bodies)
            assert not missing, f"round {round_no}: lost {len(missing)} confirmed messages"
            assert len(bodies) == len(set(bodies)), "a message came back twice"
            total_confirmed += len(confirmed)
        assert total_confirmed > 1000, "the test did not exercise much"
    finally:
        proc.stop()


@pytest.mark.hutch_only
def test_restart_redelivers_unacked_and_drops_transient() -> None:
    proc = HutchProcess()
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("dq", durable=True)
        ch.queue_declare("tq", durable=False)
        ch.exchange_declare("dx", "topic", durable=True)
        ch.queue_bind("dq", "dx", "jobs.#")
        for i in range(4):
            ch.basic_publish("dx", "jobs.a", f"p{i}".encode(), pika.BasicProperties(delivery_mode=2))
        ch.basic_publish("", "dq", b"transient", pika.BasicProperties(delivery_mode=1))
        ch.basic_publish("", "tq", b"in a transient queue", pika.BasicProperties(delivery_mode=2))
        _m0, _, b0 = ch.basic_get("dq")  # delivered, not acked
        m1, _, b1 = ch.basic_get("dq")
        ch.basic_ack(m1.delivery_tag)  # acked
        assert (b0, b1) == (b"p0", b"p1")
        # A barrier instead of a sleep: confirmed after the get and the ack on the same
        # channel, so their records are on disk too (the log writes in order).
        ch.queue_declare("barrier", durable=True)
        ch.basic_publish("", "barrier", b"", pika.BasicProperties(delivery_mode=2))
        proc.kill()
        proc.start()
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        got = []
        while True:
            method, props, body = ch.basic_get("dq", auto_ack=True)
            if method is None:
                break
            got.append((body, method.redelivered, method.exchange, method.routing_key,
                        props.delivery_mode))
        assert got == [(b"p0", True, "dx", "jobs.a", 2), (b"p2", False, "dx", "jobs.a", 2),
                       (b"p3", False, "dx", "jobs.a", 2)]
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.queue_declare("tq", passive=True)
        assert info.value.reply_code == 404
        ch = conn.channel()
        ch.exchange_declare("dx", "topic", durable=True, passive=True)
        # The binding came back too: a new publish through it is routed.
        ch.basic_publish("dx", "jobs.b", b"after")
        assert ch.basic_get("dq", auto_ack=True)[2] == b"after"
        conn.close()
        assert proc.wait_for_log("recovered 4 messages in 2 durable queues")  # dq 3, barrier 1
    finally:
        proc.stop()


@pytest.mark.hutch_only
def test_consumed_unacked_message_is_redelivered_after_kill9() -> None:
    """basic.consume deliveries are recorded too (not only basic.get): after a crash a
    message a consumer held comes back with redelivered=true."""
    proc = HutchProcess()
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("cq", durable=True)
        ch.basic_publish("", "cq", b"held", pika.BasicProperties(delivery_mode=2))
        ch.basic_publish("", "cq", b"not delivered", pika.BasicProperties(delivery_mode=2))
        cons = pika.BlockingConnection(pika.URLParameters(proc.url))
        cch = cons.channel()
        cch.basic_qos(prefetch_count=1)
        got = []
        cch.basic_consume("cq", lambda _c, _m, _p, body: got.append(body))
        deadline = time.monotonic() + 10
        while not got:
            assert time.monotonic() < deadline
            cons.process_data_events(time_limit=0.05)
        assert got == [b"held"]
        # A barrier: this confirm comes from a store batch written after the delivery
        # was recorded (records go to the log in order).
        ch.basic_publish("", "other", b"barrier", pika.BasicProperties(delivery_mode=2))
        ch.queue_declare("other", durable=True)
        ch.basic_publish("", "other", b"barrier", pika.BasicProperties(delivery_mode=2))
        proc.kill()
        proc.start()
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        assert drain(conn.channel(), "cq") == [(b"held", True), (b"not delivered", False)]
        conn.close()
    finally:
        proc.stop()


@pytest.mark.hutch_only
def test_data_dir_is_locked_against_a_second_broker() -> None:
    proc = HutchProcess()
    proc.start()
    try:
        second = HutchProcess(data_dir=proc.data_dir)
        with pytest.raises(RuntimeError) as info:
            second.start(timeout=5)
        assert "in use by another hutch process" in str(info.value)
    finally:
        proc.stop()
