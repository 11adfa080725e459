"""Message content over real sockets (pika): all 14 basic properties, header field
types, body sizes around the frame boundary and a 20 MiB body; server-sent basic.cancel."""

from __future__ import annotations

import datetime
import decimal
import os

import pika
import pytest

from tests.integration.test_wq_dispatch import (
    Recorder,
    open_conns,
    pump_until,
    setup_queue,
    wait_ready,
)

HEADERS = {
    "str": "hello wörld",
    "empty": "",
    "int": 42,
    "neg": -7,
    "zero": 0,
    "big": 2**40,
    "bigneg": -(2**62),
    "true": True,
    "false": False,
    "void": None,
    "bytes": b"\x00\x01\xff",
    "decimal": decimal.Decimal("12.345"),
    "when": datetime.datetime(2021, 5, 6, 7, 8, 9, tzinfo=datetime.UTC),
    "table": {"nested": {"deeper": "yes", "n": 1}, "list": [1, "two"]},
    "array": [1, "two", True, None, {"k": "v"}, [1, 2], b"raw"],
    "x-custom": "kept",
}


@pytest.fixture
def conns(broker_url):
    yield from open_conns(broker_url)


def test_all_basic_properties_round_trip(conns, qname):
    _c, ch = setup_queue(conns, qname)
    props = pika.BasicProperties(
        content_type="application/json",
        content_encoding="gzip",
        headers=HEADERS,
        delivery_mode=2,
        priority=7,
        correlation_id="corr-1",
        reply_to="reply.queue",
        expiration="600000",
        message_id="msg-1",
        timestamp=1_700_000_000,
        type="order.created",
        user_id="guest",
        app_id="hutch-tests",
        cluster_id="cluster-a",
    )
    ch.basic_publish("", qname, b"{}", props)
    assert wait_ready(ch, qname, 1) == 1
    # Via basic.get ...
    _m, got, body = ch.basic_get(qname)
    assert body == b"{}"
    for field in ("content_type", "content_encoding", "delivery_mode", "priority", "correlation_id",
                  "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id",
                  "cluster_id"):
        assert getattr(got, field) == getattr(props, field), field
    assert got.headers == HEADERS
    assert type(got.headers["true"]) is bool and isinstance(got.headers["big"], int)
    ch.basic_nack(_m.delivery_tag, requeue=True)
    # ... and via basic.deliver after a requeue: still identical.
    c2 = conns()
    ch2 = c2.channel()
    seen = []
    ch2.basic_consume(qname, lambda c, m, p, b: seen.append((m, p, b)), auto_ack=True)
    assert pump_until([c2], lambda: len(seen) == 1)
    m, p, b = seen[0]
    assert m.redelivered and b == b"{}"
    assert p.headers == HEADERS and p.timestamp == 1_700_000_000 and p.cluster_id == "cluster-a"


def test_no_properties_stay_absent(conns, qname):
    _c, ch = setup_queue(conns, qname)
    ch.basic_publish("", qname, b"bare", pika.BasicProperties())
    assert wait_ready(ch, qname, 1) == 1
    _m, p, body = ch.basic_get(qname, auto_ack=True)
    assert body == b"bare"
    for field in ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
                  "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
                  "user_id", "app_id", "cluster_id"):
        assert getattr(p, field) is None, field


def test_user_id_mismatch_is_406(conns, qname):
    _c, ch = setup_queue(conns, qname)
    ch.basic_publish("", qname, b"x", pika.BasicProperties(user_id="mallory"))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(qname, passive=True)
    assert ei.value.reply_code == 406


def _frame_max(conn: pika.BlockingConnection) -> int:
    return conn._impl.params.frame_max


@pytest.mark.parametrize("size", ["0", "1", "fm-9", "fm-8", "fm-7", "2fm-16", "2fm-15"])
def test_body_sizes_at_frame_boundaries(conns, qname, size):
    c, ch = setup_queue(conns, qname)
    fm = _frame_max(c)
    assert fm >= 4096
    n = {"0": 0, "1": 1, "fm-9": fm - 9, "fm-8": fm - 8, "fm-7": fm - 7,
         "2fm-16": 2 * (fm - 8), "2fm-15": 2 * (fm - 8) + 1}[size]
    body = os.urandom(n)
    ch.basic_publish("", qname, body)
    assert wait_ready(ch, qname, 1) == 1
    _m, _p, got = ch.basic_get(qname, auto_ack=True)
    assert len(got) == n and got == body
    # And through basic.deliver.
    ch.basic_publish("", qname, body)
    r = Recorder(ack=True)
    ch.basic_consume(qname, r)
    assert pump_until([c], lambda: len(r.got) == 1)
    assert r.got[0][2] == body


def test_small_frame_max_splits_bodies(broker_url, qname):
    params = pika.URLParameters(broker_url)
    params.frame_max = 4096
    c = pika.BlockingConnection(params)
    try:
        assert _frame_max(c) == 4096
        ch = c.channel()
        ch.queue_declare(qname, auto_delete=False)
        bodies = [os.urandom(n) for n in (4088, 4089, 10_000, 0)]
        for b in bodies:
            ch.basic_publish("", qname, b, pika.BasicProperties(headers={"pad": "x" * 3000}))
        r = Recorder(ack=True)
        ch.basic_consume(qname, r)
        assert pump_until([c], lambda: len(r.got) == 4)
        assert r.bodies == bodies
        ch.queue_delete(qname)
    finally:
        c.close()


def test_twenty_mib_body(conns, qname):
    c, ch = setup_queue(conns, qname)
    body = os.urandom(1024) * (20 * 1024)
    assert len(body) == 20 * 1024 * 1024
    ch.confirm_delivery()
    ch.basic_publish("", qname, body)
    r = Recorder(ack=True)
    ch.basic_consume(qname, r)
    assert pump_until([c], lambda: len(r.got) == 1, timeout=20)
    assert len(r.got[0][2]) == len(body) and r.got[0][2] == body


async def test_aio_pika_header_types_round_trip(broker_url, qname):
    """pamqp encodes types pika cannot (float/double, short ints): they come back equal."""
    import aio_pika

    headers = {"f": 1.5, "neg": -3, "big": 2**50, "s": "x", "b": True, "l": [1.25, "a"],
               "d": decimal.Decimal("1.50"), "t": datetime.datetime(2020, 1, 2, 3, 4, 5)}
    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue(qname, auto_delete=True)
        await ch.default_exchange.publish(
            aio_pika.Message(b"h", headers=headers, priority=3, correlation_id="c",
                             content_type="text/plain", app_id="a", type="t",
                             timestamp=datetime.datetime(2022, 2, 2, 2, 2, 2,
                                                         tzinfo=datetime.UTC)),
            routing_key=qname)
        msg = await q.get(timeout=5)
        await msg.ack()
        assert msg.body == b"h"
        got = dict(msg.headers)
        assert got["f"] == 1.5 and got["neg"] == -3 and got["big"] == 2**50 and got["b"] is True
        assert got["l"] == [1.25, "a"] and got["d"] == decimal.Decimal("1.50")
        assert got["s"] in ("x", b"x")
        assert got["t"].replace(tzinfo=None) == datetime.datetime(2020, 1, 2, 3, 4, 5)
        assert msg.priority == 3 and msg.correlation_id == "c" and msg.app_id == "a"
        assert msg.timestamp.replace(tzinfo=None) == datetime.datetime(2022, 2, 2, 2, 2, 2)


# -- server-sent basic.cancel ------------------------------------------------------------

def test_server_cancel_when_queue_deleted(conns, qname):
    c, ch = setup_queue(conns, qname)
    ch.basic_publish("", qname, b"held")
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    r = Recorder()
    tag = ch.basic_consume(qname, r)
    assert pump_until([c], lambda: len(r.got) == 1)
    other = conns()
    other.channel().queue_delete(qname)
    assert pump_until([c], lambda: cancelled == [tag])
    assert ch.is_open
    assert tag not in ch.consumer_tags
    # Acking a message of the deleted queue is harmless; the channel stays usable.
    ch.basic_ack(r.got[0][0])
    ch.queue_declare(qname + ".after", auto_delete=True)
    assert ch.is_open


async def test_aio_pika_server_cancel_closes_iterator(broker_url, qname):
    import asyncio

    import aio_pika

    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue(qname)
        await ch.default_exchange.publish(aio_pika.Message(b"one"), routing_key=qname)
        cancelled = asyncio.Event()
        got = []

        async def cb(msg):
            got.append(msg.body)
            await msg.ack()

        tag = await q.consume(cb)
        ch2 = await conn.channel()
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.02)
        assert got == [b"one"]
        # aiormq removes the consumer when the server cancels it.
        raw = await ch.get_underlay_channel()  # the aiormq channel underneath
        await ch2.queue_delete(qname)
        for _ in range(250):
            if tag not in raw.consumers:
                cancelled.set()
                break
            await asyncio.sleep(0.02)
        assert cancelled.is_set()
        assert not ch.is_closed
        await ch.declare_queue(qname + ".x", auto_delete=True)
