"""Every field-table value type RabbitMQ's decoder takes, in arguments and in headers.

RabbitMQ (rabbit_binary_parser / rabbit_binary_generator) reads ``t b B s u I i l L f
d D S x A T F V`` and writes each back with its own tag, except ``L``, which it reads as
a signed 64-bit ``long`` and writes back as ``l``.  py-amqp (so kombu and Celery) sends
integers beyond 32 bits as ``L``: Celery's native delayed delivery declares queues with
such an ``x-message-ttl``.  The spec's ``U`` is not one of them (RabbitMQ 3.10 resets
the connection; Hutch answers 502, see README "Known differences").
"""

from __future__ import annotations

import struct
import time
import uuid

import amqp
import pika
import pytest
from pamqp import commands as cmd

from tests.integration.rawamqp import raw_frame, raw_session, shortstr
from tests.integration.test_header_types import _expect_method, _read_raw


def _long(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


def _entry(key: str, value: bytes) -> bytes:
    return shortstr(key) + value


# tag -> (value as sent, value as RabbitMQ writes it back)
_NESTED = b"b\xfe" + b"u\xff\xfe" + b"L" + struct.pack(">q", 2**40)
TYPES: dict[str, tuple[bytes, bytes]] = {
    "t": (b"t\x01", b"t\x01"),
    "b": (b"b\xfe", b"b\xfe"),
    "B": (b"B\xfe", b"B\xfe"),
    "s": (b"s\x80\x01", b"s\x80\x01"),
    "u": (b"u\xff\xfe", b"u\xff\xfe"),
    "I": (b"I\x80\x00\x00\x01", b"I\x80\x00\x00\x01"),
    "i": (b"i\xff\xff\xff\xfe", b"i\xff\xff\xff\xfe"),
    "l": (b"l" + struct.pack(">q", -(2**40)), b"l" + struct.pack(">q", -(2**40))),
    "L": (b"L" + struct.pack(">q", 2**40), b"l" + struct.pack(">q", 2**40)),
    "L-small": (b"L" + struct.pack(">q", 7), b"l" + struct.pack(">q", 7)),
    "f": (b"f" + struct.pack(">f", 1.1), b"f" + struct.pack(">f", 1.1)),
    "d": (b"d" + struct.pack(">d", 1.1), b"d" + struct.pack(">d", 1.1)),
    "D": (b"D\x02\xff\xff\xff\xfe", b"D\x02\xff\xff\xff\xfe"),
    "S": (b"S" + _long(b"text"), b"S" + _long(b"text")),
    "x": (b"x" + _long(b"\x00\xff"), b"x" + _long(b"\x00\xff")),
    "T": (b"T" + struct.pack(">Q", 1_700_000_000), b"T" + struct.pack(">Q", 1_700_000_000)),
    "V": (b"V", b"V"),
    "A": (b"A" + _long(_NESTED), b"A" + _long(_NESTED.replace(b"L", b"l"))),
    "F": (b"F" + _long(b"\x01kA" + _long(b"F" + _long(b"\x01jA" + _long(_NESTED)))),
          b"F" + _long(b"\x01kA" + _long(b"F" + _long(b"\x01jA" + _long(
              _NESTED.replace(b"L", b"l")))))),
}


def _declare_raw(conn, queue: str, arguments: bytes) -> bytes:
    """queue.declare with a hand-made arguments table; the answer's raw payload."""
    conn.send_bytes(raw_frame(1, 1, struct.pack(">HHH", 50, 10, 0) + shortstr(queue)
                              + b"\x00" + _long(arguments)))
    return _read_raw(conn)[2]


@pytest.fixture
def dl_queues(broker_url):
    """q (dead-letters to dlq through the default exchange) and dlq."""
    tag = uuid.uuid4().hex[:8]
    q, dlq = f"ft.q.{tag}", f"ft.dlq.{tag}"
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    ch.queue_declare(dlq)
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": "",
                                   "x-dead-letter-routing-key": dlq})
    yield q, dlq
    ch.queue_delete(q)
    ch.queue_delete(dlq)
    conn.close()


@pytest.mark.parametrize("kind", sorted(TYPES))
def test_header_of_every_type_is_written_back_as_rabbitmq_does(broker_url, dl_queues, kind):
    """Dead-lettering decodes the headers, adds x-death and encodes them again: every
    value comes back with its own type (``L`` as ``l``), nested ones included."""
    q, dlq = dl_queues
    sent, expected = TYPES[kind]
    with raw_session(broker_url) as conn:
        props = struct.pack(">H", 1 << 13) + _long(_entry("k", sent))
        conn.send(1, cmd.Basic.Publish(exchange="", routing_key=q))
        conn.send_bytes(raw_frame(2, 1, struct.pack(">HHQ", 60, 0, 2) + props))
        conn.send_bytes(raw_frame(3, 1, b"hi"))
        conn.send_bytes(raw_frame(1, 1, struct.pack(">HHH", 60, 70, 0) + shortstr(q) + b"\x00"))
        payload = _expect_method(conn, b"\x00\x3c\x00\x47")  # get-ok
        tag = struct.unpack_from(">Q", payload, 4)[0]
        ftype, _ch, header = _read_raw(conn)
        assert ftype == 2 and _entry("k", sent) in header  # passed through untouched
        _read_raw(conn)
        conn.send_bytes(raw_frame(1, 1, struct.pack(">HHQB", 60, 90, tag, 0)))  # reject
        for _ in range(100):
            conn.send_bytes(raw_frame(1, 1, struct.pack(">HHH", 60, 70, 0) + shortstr(dlq)
                                      + b"\x01"))
            ftype, _ch, payload = _read_raw(conn)
            if payload[:4] == b"\x00\x3c\x00\x47":
                break
            time.sleep(0.02)
        else:
            raise AssertionError("nothing was dead-lettered")
        ftype, _ch, header = _read_raw(conn)
        assert ftype == 2
        assert b"\x07x-death" in header  # decoded and encoded again
        assert _entry("k", expected) in header


def test_arguments_of_every_type_are_accepted(broker_url):
    name = f"ft.args.{uuid.uuid4().hex[:8]}"
    args = b"".join(_entry(f"x-k{i}", sent) for i, (sent, _) in enumerate(TYPES.values()))
    with raw_session(broker_url) as conn:
        answer = _declare_raw(conn, name, args)
        assert answer[:4] == b"\x00\x32\x00\x0b", answer  # declare-ok
        conn.send(1, cmd.Queue.Delete(queue=name))
        conn.expect(1, cmd.Queue.DeleteOk)


def test_long_typed_ttl_is_an_integer_argument(broker_url):
    """An 'L' x-message-ttl is accepted and equivalent to the same value in any integer
    type; past RabbitMQ's ten-year limit it is refused with its text."""
    name = f"ft.ttl.{uuid.uuid4().hex[:8]}"
    ttl = b"\x0dx-message-ttl"
    with raw_session(broker_url) as conn:
        assert _declare_raw(conn, name, ttl + b"L" + struct.pack(">q", 2**33))[:4] \
            == b"\x00\x32\x00\x0b"
        assert _declare_raw(conn, name, ttl + b"l" + struct.pack(">q", 2**33))[:4] \
            == b"\x00\x32\x00\x0b"
        answer = _declare_raw(conn, name, ttl + b"I" + struct.pack(">i", 5))
        assert answer[:4] == b"\x00\x14\x00\x28"  # channel.close
        assert (f"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{name}' in "
                "vhost '/': received '5' but current is '8589934592'").encode() in answer
        conn.send(1, cmd.Channel.CloseOk())
        conn.send(2, cmd.Channel.Open())
        conn.expect(2, cmd.Channel.OpenOk)
        conn.send(2, cmd.Queue.Delete(queue=name))
        conn.expect(2, cmd.Queue.DeleteOk)
    with raw_session(broker_url) as conn:
        answer = _declare_raw(conn, name, ttl + b"L" + struct.pack(">q", 315_360_000_001))
        assert (f"PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue '{name}' in vhost "
                "'/': {value_too_large,315360000001}").encode() in answer


def test_py_amqp_big_integers(broker_url, dl_queues):
    """py-amqp writes integers beyond 32 bits as 'L': in arguments and in headers."""
    q, dlq = dl_queues
    u = pika.URLParameters(broker_url)
    conn = amqp.Connection(f"{u.host}:{u.port}", userid="guest", password="guest",
                           connect_timeout=5)
    conn.connect()
    try:
        ch = conn.channel()
        name = f"ft.amqp.{uuid.uuid4().hex[:8]}"
        ch.queue_declare(name, auto_delete=True,
                         arguments={"x-message-ttl": 2**33, "x-expires": 2**32})
        ch.basic_publish(amqp.Message(b"x", application_headers={"big": 2**40, "neg": -(2**40),
                                                                 "nested": {"n": [2**35]}}),
                         routing_key=q)
        msg = None
        for _ in range(100):
            msg = ch.basic_get(q)
            if msg is not None:
                break
        assert msg is not None
        ch.basic_reject(msg.delivery_tag, requeue=False)
        dead = None
        for _ in range(200):
            dead = ch.basic_get(dlq, no_ack=True)
            if dead is not None:
                break
        assert dead is not None
        headers = dead.headers
        assert headers["big"] == 2**40 and headers["neg"] == -(2**40)
        assert headers["nested"] == {"n": [2**35]}
        assert headers["x-death"][0]["queue"] == q
    finally:
        conn.close()


def test_celery_native_delayed_delivery_topology(broker_url):
    """kombu declares Celery's 28 delay levels with x-message-ttl up to 2**27 s."""
    kombu = pytest.importorskip("kombu")
    from kombu.transport.native_delayed_delivery import (
        declare_native_delayed_delivery_exchanges_and_queues,
    )
    prefix = f"ft{uuid.uuid4().hex[:8]}"
    with kombu.Connection(broker_url, connect_timeout=5) as conn:
        declare_native_delayed_delivery_exchanges_and_queues(conn, "quorum", prefix)
        ch = conn.channel()
        try:
            ok = ch.queue_declare(f"{prefix}_celery_delayed_27", passive=True)
            assert ok.message_count == 0
        finally:
            for level in range(28):
                ch.queue_delete(f"{prefix}_celery_delayed_{level}")
                ch.exchange_delete(f"{prefix}_celery_delayed_{level}")
            ch.exchange_delete(f"{prefix}_celery_delayed_delivery")


def test_headers_exchange_matches_across_integer_types(broker_url):
    """A binding argument sent as 'L' (py-amqp) matches the same number in a header sent
    as 'l' (pika): RabbitMQ compares integers of any width by value."""
    tag = uuid.uuid4().hex[:8]
    ex, q = f"ft.hx.{tag}", f"ft.hq.{tag}"
    u = pika.URLParameters(broker_url)
    conn = amqp.Connection(f"{u.host}:{u.port}", userid="guest", password="guest",
                           connect_timeout=5)
    conn.connect()
    try:
        ch = conn.channel()
        ch.exchange_declare(ex, "headers", auto_delete=True)
        ch.queue_declare(q, auto_delete=True)
        ch.queue_bind(q, ex, arguments={"x-match": "all", "big": 2**40})
        pconn = pika.BlockingConnection(u)
        pch = pconn.channel()
        pch.basic_publish(ex, "", b"m", pika.BasicProperties(headers={"big": 2**40}))
        pch.basic_publish(ex, "", b"n", pika.BasicProperties(headers={"big": 2**40 + 1}))
        pconn.close()
        bodies = []
        for _ in range(100):
            msg = ch.basic_get(q, no_ack=True)
            if msg is not None:
                bodies.append(msg.body)
            elif bodies:
                break
            time.sleep(0.02)
        assert bodies == [b"m"]
    finally:
        conn.close()
