"""Work-queue dispatch over real sockets (pika): round-robin, prefetch, qos,
consumers that die (channel close, connection close, kill -9 of a worker process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pika
import pytest


class Conns:
    """Opens pika BlockingConnections and closes them (and deletes queues) afterwards."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opened: list[pika.BlockingConnection] = []
        self.queues: list[str] = []

    def __call__(self) -> pika.BlockingConnection:
        c = pika.BlockingConnection(pika.URLParameters(self.url))
        self.opened.append(c)
        return c

    def cleanup(self) -> None:
        if self.queues:
            try:
                c = pika.BlockingConnection(pika.URLParameters(self.url))
                ch = c.channel()
                for q in self.queues:
                    ch.queue_delete(q)
                c.close()
            except Exception:
                pass
        for c in self.opened:
            try:
                if c.is_open:
                    c.close()
            except Exception:
                pass


def open_conns(url: str):
    """Generator body of the ``conns`` fixture (each test_wq_* module defines its own)."""
    f = Conns(url)
    yield f
    f.cleanup()


@pytest.fixture
def conns(broker_url):
    yield from open_conns(broker_url)


def pump_until(connections, pred, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        for c in connections:
            c.process_data_events(time_limit=0.01)
    return pred()


def pump_for(connections, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for c in connections:
            c.process_data_events(time_limit=0.01)


def ready_count(ch, queue: str) -> int:
    return ch.queue_declare(queue, passive=True).method.message_count


def wait_ready(ch, queue: str, n: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        got = ready_count(ch, queue)
        if got == n or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def stays(ch, queue: str, n: int, duration: float = 0.2) -> bool:
    """The ready count is ``n`` now and throughout ``duration`` seconds."""
    deadline = time.monotonic() + duration
    while True:
        if ready_count(ch, queue) != n:
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.02)


class Recorder:
    def __init__(self, ack: bool = False) -> None:
        self.ack = ack
        self.got: list[tuple[int, bool, bytes]] = []  # (delivery_tag, redelivered, body)

    def __call__(self, ch, method, props, body) -> None:
        self.got.append((method.delivery_tag, method.redelivered, body))
        if self.ack:
            ch.basic_ack(method.delivery_tag)

    @property
    def bodies(self) -> list[bytes]:
        return [b for _t, _r, b in self.got]


def setup_queue(conns: Conns, qname: str, **kw):
    c = conns()
    ch = c.channel()
    ch.queue_declare(qname, **kw)
    conns.queues.append(qname)
    return c, ch


def publish_n(ch, qname: str, n: int, prefix: str = "m") -> list[bytes]:
    bodies = [f"{prefix}{i}".encode() for i in range(n)]
    for b in bodies:
        ch.basic_publish("", qname, b)
    return bodies


# -- round robin -------------------------------------------------------------

def test_round_robin_three_consumers(conns, qname):
    _pc, pch = setup_queue(conns, qname)
    c = conns()
    recs = []
    for _ in range(3):
        ch = c.channel()
        r = Recorder(ack=True)
        ch.basic_consume(qname, r)
        recs.append(r)
    bodies = publish_n(pch, qname, 12)
    assert pump_until([c], lambda: sum(len(r.got) for r in recs) == 12)
    pump_for([c], 0.05)
    assert sorted(b for r in recs for b in r.bodies) == sorted(bodies)
    for i, r in enumerate(recs):
        # Strict round robin: consumer i gets messages i, i+3, i+6, i+9.
        assert r.bodies == bodies[i::3], (i, r.bodies)
        # Delivery tags are per channel: every channel counts 1, 2, 3, 4.
        assert [t for t, _r, _b in r.got] == [1, 2, 3, 4]
        assert not any(red for _t, red, _b in r.got)


def test_round_robin_two_connections(conns, qname):
    _pc, pch = setup_queue(conns, qname)
    c1, c2 = conns(), conns()
    r1, r2 = Recorder(ack=True), Recorder(ack=True)
    c1.channel().basic_consume(qname, r1)
    c2.channel().basic_consume(qname, r2)
    publish_n(pch, qname, 10)
    assert pump_until([c1, c2], lambda: len(r1.got) + len(r2.got) == 10)
    assert len(r1.got) == 5 and len(r2.got) == 5
    assert [t for t, _r, _b in r1.got] == [1, 2, 3, 4, 5]
    assert [t for t, _r, _b in r2.got] == [1, 2, 3, 4, 5]


def test_redelivered_flag_after_nack(conns, qname):
    _pc, pch = setup_queue(conns, qname)
    publish_n(pch, qname, 1)
    c = conns()
    ch = c.channel()
    r = Recorder()
    ch.basic_consume(qname, r)
    assert pump_until([c], lambda: len(r.got) == 1)
    assert r.got[0] == (1, False, b"m0")
    ch.basic_nack(1, requeue=True)
    assert pump_until([c], lambda: len(r.got) == 2)
    assert r.got[1] == (2, True, b"m0")
    ch.basic_ack(2)
    assert wait_ready(pch, qname, 0) == 0


# -- prefetch ----------------------------------------------------------------

def test_prefetch_one_fair_dispatch(conns, qname):
    _pc, pch = setup_queue(conns, qname)
    ca, cb = conns(), conns()
    cha, chb = ca.channel(), cb.channel()
    cha.basic_qos(prefetch_count=1)
    chb.basic_qos(prefetch_count=1)
    ra, rb = Recorder(), Recorder()
    cha.basic_consume(qname, ra)
    chb.basic_consume(qname, rb)
    publish_n(pch, qname, 4)
    assert pump_until([ca, cb], lambda: len(ra.got) == 1 and len(rb.got) == 1)
    pump_for([ca, cb], 0.15)
    assert len(ra.got) == 1 and len(rb.got) == 1
    assert wait_ready(pch, qname, 2) == 2
    # B acks and gets the next one; busy A still holds only its first message.
    chb.basic_ack(rb.got[0][0])
    assert pump_until([ca, cb], lambda: len(rb.got) == 2)
    pump_for([ca, cb], 0.15)
    assert len(ra.got) == 1 and len(rb.got) == 2
    assert ready_count(pch, qname) == 1
    cha.basic_ack(ra.got[0][0])
    assert pump_until([ca, cb], lambda: len(ra.got) == 2)
    pump_for([ca, cb], 0.1)
    assert len(rb.got) == 2
    assert sorted(ra.bodies + rb.bodies) == [b"m0", b"m1", b"m2", b"m3"]


def test_prefetch_zero_is_unlimited(conns, qname):
    _pc, pch = setup_queue(conns, qname)
    c = conns()
    ch = c.channel()
    ch.basic_qos(prefetch_count=0)
    r = Recorder()
    ch.basic_consume(qname, r)
    bodies = publish_n(pch, qname, 300)
    assert pump_until([c], lambda: len(r.got) == 300)
    assert r.bodies == bodies
    assert ready_count(pch, qname) == 0
    ch.basic_ack(300, multiple=True)


@pytest.mark.parametrize("global_qos, expected", [(True, 2), (False, 4)])
def test_qos_global_vs_per_consumer(conns, qname, global_qos, expected):
    _pc, pch = setup_queue(conns, qname + ".a")
    pch.queue_declare(qname + ".b")
    conns.queues.append(qname + ".b")
    publish_n(pch, qname + ".a", 5)
    publish_n(pch, qname + ".b", 5)
    c = conns()
    ch = c.channel()
    ch.basic_qos(prefetch_count=2, global_qos=global_qos)
    ra, rb = Recorder(), Recorder()
    ch.basic_consume(qname + ".a", ra)
    ch.basic_consume(qname + ".b", rb)
    assert pump_until([c], lambda: len(ra.got) + len(rb.got) >= expected)
    pump_for([c], 0.2)
    assert len(ra.got) + len(rb.got) == expected
    if not global_qos:
        assert len(ra.got) == 2 and len(rb.got) == 2


# -- consumers that die --------------------------------------------------------

def _drain_with_new_consumer(conns, qname, n):
    c = conns()
    ch = c.channel()
    r = Recorder(ack=True)
    ch.basic_consume(qname, r)
    assert pump_until([c], lambda: len(r.got) >= n), r.got
    pump_for([c], 0.1)
    return r


@pytest.mark.parametrize("how", ["channel", "connection"])
def test_dead_consumer_messages_requeued_at_head(conns, qname, how):
    _pc, pch = setup_queue(conns, qname)
    bodies = publish_n(pch, qname, 6)
    c = conns()
    ch = c.channel()
    ch.basic_qos(prefetch_count=3)
    r = Recorder()
    ch.basic_consume(qname, r)
    assert pump_until([c], lambda: len(r.got) == 3)
    assert r.bodies == bodies[:3]
    assert wait_ready(pch, qname, 3) == 3
    if how == "channel":
        ch.close()
    else:
        c.close()
    assert wait_ready(pch, qname, 6) == 6
    r2 = _drain_with_new_consumer(conns, qname, 6)
    # Original order restored: requeued messages go back to the head.
    assert r2.bodies == bodies
    assert [red for _t, red, _b in r2.got] == [True] * 3 + [False] * 3


def test_requeue_partial_acks_keeps_order(conns, qname):
    """Ack the middle one, drop the channel: the others return in their old places."""
    _pc, pch = setup_queue(conns, qname)
    bodies = publish_n(pch, qname, 5)
    c = conns()
    ch = c.channel()
    ch.basic_qos(prefetch_count=3)
    r = Recorder()
    ch.basic_consume(qname, r)
    assert pump_until([c], lambda: len(r.got) == 3)
    ch.basic_cancel(ch.consumer_tags[0])  # no more deliveries; m0..m2 stay unacked
    ch.basic_ack(2)  # m1
    ch.close()
    assert wait_ready(pch, qname, 4) == 4
    r2 = _drain_with_new_consumer(conns, qname, 4)
    assert r2.bodies == [bodies[0], bodies[2], bodies[3], bodies[4]]
    assert [red for _t, red, _b in r2.got] == [True, True, False, False]


WORKER = textwrap.dedent("""
    import sys, time, pika
    url, queue = sys.argv[1], sys.argv[2]
    c = pika.BlockingConnection(pika.URLParameters(url))
    ch = c.channel()
    ch.basic_qos(prefetch_count=3)
    got = []
    def cb(ch, method, props, body):
        got.append(body)
        if len(got) == 3:
            print("HOLDING " + ",".join(b.decode() for b in got), flush=True)
    ch.basic_consume(queue, cb)
    while True:
        c.process_data_events(time_limit=1)
""")


def test_kill9_worker_process_messages_redelivered(conns, qname, broker_url):
    _pc, pch = setup_queue(conns, qname, durable=False)
    bodies = publish_n(pch, qname, 5)
    # Another consumer, idle until the worker dies (prefetch 1, holds nothing yet).
    proc = subprocess.Popen([sys.executable, "-c", WORKER, broker_url, qname],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "HOLDING m0,m1,m2", (line, proc.stderr.read() if proc.poll() else "")
        assert wait_ready(pch, qname, 2) == 2
        c = conns()
        ch = c.channel()
        r = Recorder(ack=True)
        ch.basic_consume(qname, r)
        assert pump_until([c], lambda: len(r.got) == 2)
        assert r.bodies == [b"m3", b"m4"]
        proc.kill()
        proc.wait(5)
        assert pump_until([c], lambda: len(r.got) == 5, timeout=10)
        pump_for([c], 0.1)
        assert r.bodies == [b"m3", b"m4", b"m0", b"m1", b"m2"]
        assert [red for _t, red, _b in r.got] == [False, False, True, True, True]
        assert sorted(r.bodies) == sorted(bodies)
        assert wait_ready(pch, qname, 0) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
