"""Priority queues over real sockets (pika, kombu, aio-pika): x-max-priority on classic
queues as RabbitMQ 4.x's rabbit_priority_queue (3.10's classic priority queues behave
the same, so these run on both brokers), and the quorum-queue rule of RabbitMQ 4.3
(Hutch only: 3.10's quorum queues have no priorities)."""

from __future__ import annotations

import asyncio
import time

import aio_pika
import kombu
import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, NackError

from tests.integration.test_wq_dispatch import open_conns, pump_until, ready_count, wait_ready


@pytest.fixture
def conns(broker_url):
    yield from open_conns(broker_url)


def declare(conns, qname: str, max_priority: int | None = 10, **args):
    ch = conns().channel()
    arguments = dict(args)
    if max_priority is not None:
        arguments["x-max-priority"] = max_priority
    ch.queue_declare(qname, arguments=arguments)
    conns.queues.append(qname)
    ch.confirm_delivery()
    return ch


def publish(ch, qname: str, items, **props) -> None:
    """Publish (body, priority) pairs; priority None leaves the property out."""
    for body, prio in items:
        ch.basic_publish("", qname, body.encode(),
                         pika.BasicProperties(priority=prio, **props))


def get_all(ch, qname: str, ack: bool = True) -> list[str]:
    out = []
    while True:
        method, _props, body = ch.basic_get(qname, auto_ack=ack)
        if method is None:
            return out
        out.append(body.decode())


def test_higher_priority_first_fifo_within_a_level(conns, qname):
    ch = declare(conns, qname)
    publish(ch, qname, [("a1", 1), ("b5", 5), ("c-", None), ("d10", 10), ("e5", 5),
                        ("f1", 1), ("g3", 3), ("h10", 10), ("i0", 0)])
    assert ready_count(ch, qname) == 9
    assert get_all(ch, qname) == ["d10", "h10", "b5", "e5", "g3", "a1", "f1", "c-", "i0"]


def test_priority_above_the_maximum_counts_as_the_maximum(conns, qname):
    ch = declare(conns, qname, 5)
    publish(ch, qname, [("a5", 5), ("b200", 200), ("c4", 4), ("d6", 6), ("e5", 5)])
    assert get_all(ch, qname) == ["a5", "b200", "d6", "e5", "c4"]


def test_absent_priority_counts_as_zero(conns, qname):
    ch = declare(conns, qname, 3)
    publish(ch, qname, [("a-", None), ("b0", 0), ("c1", 1), ("d-", None)])
    assert get_all(ch, qname) == ["c1", "a-", "b0", "d-"]


@pytest.mark.hutch_only
def test_max_priority_zero_acts_as_one(conns, qname):
    # rabbit_priority_queue since 3.13 (and in every 4.x): max(1, min(N, 255)) levels
    # above 0.  Hutch only: RabbitMQ 3.10 made x-max-priority 0 a single level.
    ch = declare(conns, qname, 0)
    publish(ch, qname, [("a0", 0), ("b1", 1), ("c9", 9), ("d-", None)])
    assert get_all(ch, qname) == ["b1", "c9", "a0", "d-"]


def test_requeued_messages_return_to_their_place_in_their_level(conns, qname):
    ch = declare(conns, qname, 5)
    publish(ch, qname, [("a5", 5), ("b5", 5), ("c5", 5), ("x1", 1), ("y1", 1)])
    taken = {}
    for _ in range(4):
        method, _p, body = ch.basic_get(qname, auto_ack=False)
        taken[body.decode()] = method.delivery_tag
    assert sorted(taken) == ["a5", "b5", "c5", "x1"]
    ch.basic_ack(taken["b5"])
    publish(ch, qname, [("d5", 5), ("z1", 1)])
    # Back in order: x1 before y1 in level 1, a5 and c5 before d5 in level 5.
    ch.basic_nack(taken["x1"], requeue=True)
    ch.basic_nack(taken["c5"], requeue=True)
    ch.basic_nack(taken["a5"], requeue=True)
    got = []
    while True:
        method, _p, body = ch.basic_get(qname, auto_ack=True)
        if method is None:
            break
        got.append((body.decode(), method.redelivered))
    assert got == [("a5", True), ("c5", True), ("d5", False), ("x1", True), ("y1", False),
                   ("z1", False)]


def test_prefetch_one_consumer_gets_priority_order(conns, qname):
    ch = declare(conns, qname, 10)
    publish(ch, qname, [(f"m{i}-{p}", p) for i, p in enumerate([0, 3, 9, 3, 0, 9, 5])])
    c = conns()
    cch = c.channel()
    cch.basic_qos(prefetch_count=1)
    got: list[str] = []

    def on_msg(chan, method, _props, body):
        got.append(body.decode())
        # A message published now, at the top level, overtakes what is still queued.
        if len(got) == 2:
            ch.basic_publish("", qname, b"late-10", pika.BasicProperties(priority=10))
        chan.basic_ack(method.delivery_tag)

    cch.basic_consume(qname, on_msg)
    assert pump_until([c], lambda: len(got) == 8)
    assert got == ["m2-9", "m5-9", "late-10", "m6-5", "m1-3", "m3-3", "m0-0", "m4-0"]


def test_kombu_priorities(broker_url, qname, conns):
    conns.queues.append(qname)
    with kombu.Connection(broker_url) as conn:
        queue = kombu.Queue(qname, routing_key=qname, queue_arguments={"x-max-priority": 9})
        with conn.Producer() as producer:
            for body, prio in [("low", 1), ("mid", 5), ("high", 9), ("none", None), ("mid2", 5)]:
                kw = {} if prio is None else {"priority": prio}
                producer.publish(body, exchange="", routing_key=qname, declare=[queue],
                                 retry=True, **kw)
        got = []
        simple = conn.SimpleQueue(queue)
        try:
            for _ in range(5):
                msg = simple.get(timeout=5)
                got.append(msg.payload)
                msg.ack()
        finally:
            simple.close()
    assert got == ["high", "mid", "mid2", "low", "none"]


def test_aio_pika_priorities_with_a_consumer(broker_url, qname, conns):
    conns.queues.append(qname)

    async def run() -> list[str]:
        conn = await aio_pika.connect(broker_url)
        async with conn:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=1)
            q = await ch.declare_queue(qname, arguments={"x-max-priority": 4})
            for body, prio in [("a0", 0), ("b4", 4), ("c2", 2), ("d4", 4), ("e9", 9)]:
                await ch.default_exchange.publish(
                    aio_pika.Message(body.encode(), priority=prio), routing_key=qname)
            got = []
            async with q.iterator() as it:
                async for msg in it:
                    async with msg.process():
                        got.append(msg.body.decode())
                    if len(got) == 5:
                        break
            return got

    assert asyncio.run(run()) == ["b4", "d4", "e9", "c2", "a0"]


def test_expiry_walks_down_the_levels_and_dead_letters(conns, qname):
    dlq = qname + ".dlq"
    ch = declare(conns, dlq, None)
    ch.queue_declare(qname, arguments={"x-max-priority": 5, "x-message-ttl": 100,
                                       "x-dead-letter-exchange": "",
                                       "x-dead-letter-routing-key": dlq})
    conns.queues.append(qname)
    publish(ch, qname, [("a0", 0), ("b5", 5), ("c2", 2), ("d5", 5)])
    assert wait_ready(ch, dlq, 4, timeout=5) == 4
    got = []
    while True:
        method, props, body = ch.basic_get(dlq, auto_ack=True)
        if method is None:
            break
        got.append((body.decode(), props.headers["x-death"][0]["reason"]))
    assert got == [("b5", "expired"), ("d5", "expired"), ("c2", "expired"), ("a0", "expired")]
    assert ready_count(ch, qname) == 0


def test_per_message_ttl_expires_at_the_head_of_the_levels(conns, qname):
    ch = declare(conns, qname, 5)
    publish(ch, qname, [("old5", 5)], expiration="50")
    publish(ch, qname, [("live1", 1), ("live5", 5)])
    time.sleep(0.3)
    assert get_all(ch, qname) == ["live5", "live1"]


@pytest.mark.hutch_only
def test_an_expired_message_that_jumped_the_queue_is_never_delivered(conns, qname):
    # Hutch only: RabbitMQ (3.10 and 4.3, rabbit_amqqueue_process:fetch/2, "@todo We
    # should first drop expired messages then fetch the message ... Otherwise we will
    # send expired messages at times") delivers old5 here: it arms its TTL check only
    # for a message that lands at the head of a FIFO, and old5 overtook live1.
    ch = declare(conns, qname, 5)
    publish(ch, qname, [("live1", 1)])
    publish(ch, qname, [("old5", 5)], expiration="50")
    publish(ch, qname, [("live5", 5)])
    time.sleep(0.3)
    assert get_all(ch, qname) == ["live5", "live1"]


def test_max_length_drop_head_drops_the_highest_level(conns, qname):
    # RabbitMQ's rabbit_priority_queue:drop/2 takes from the highest non-empty level.
    dlq = qname + ".dlq"
    ch = declare(conns, dlq, None)
    ch.queue_declare(qname, arguments={"x-max-priority": 5, "x-max-length": 3,
                                       "x-dead-letter-exchange": "",
                                       "x-dead-letter-routing-key": dlq})
    conns.queues.append(qname)
    publish(ch, qname, [("a1", 1), ("b1", 1), ("c5", 5), ("d5", 5)])
    assert ready_count(ch, qname) == 3
    assert wait_ready(ch, dlq, 1) == 1
    _method, props, body = ch.basic_get(dlq, auto_ack=True)
    assert (body, props.headers["x-death"][0]["reason"]) == (b"c5", "maxlen")
    assert get_all(ch, qname) == ["d5", "a1", "b1"]


def test_max_length_bytes_drop_head(conns, qname):
    ch = declare(conns, qname, 5, **{"x-max-length-bytes": 6})
    publish(ch, qname, [("a0", 0), ("b3", 3), ("c3", 3), ("d0", 0)])
    assert get_all(ch, qname) == ["c3", "a0", "d0"]


def test_reject_publish_whatever_the_priority(conns, qname):
    ch = declare(conns, qname, 5, **{"x-max-length": 2, "x-overflow": "reject-publish"})
    publish(ch, qname, [("a1", 1), ("b5", 5)])
    with pytest.raises(NackError):
        publish(ch, qname, [("c9", 9)])
    assert ready_count(ch, qname) == 2
    assert get_all(ch, qname) == ["b5", "a1"]


def test_purge_counts_every_level(conns, qname):
    ch = declare(conns, qname, 9)
    publish(ch, qname, [(f"m{p}", p) for p in (0, 1, 5, 9, 9, None, 200)])
    assert ready_count(ch, qname) == 7
    assert ch.queue_purge(qname).method.message_count == 7
    assert ready_count(ch, qname) == 0
    publish(ch, qname, [("after", 3)])
    assert get_all(ch, qname) == ["after"]


def test_delete_reports_every_level(conns, qname):
    ch = declare(conns, qname, 9)
    publish(ch, qname, [(f"m{p}", p) for p in (0, 4, 9)])
    assert ch.queue_delete(qname).method.message_count == 3


@pytest.mark.parametrize("first, second, text", [
    (5, 6, "received '6' but current is '5'"),
    (0, 1, "received '1' but current is '0'"),
    (5, None, "received none but current is the value '5' of type 'signedint'"),
    (None, 5, "received the value '5' of type 'signedint' but current is none"),
])
def test_redeclare_with_another_max_priority(conns, qname, first, second, text):
    declare(conns, qname, first)
    ch = conns().channel()
    with pytest.raises(ChannelClosedByBroker) as exc:
        ch.queue_declare(qname, arguments={} if second is None else {"x-max-priority": second})
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == (f"PRECONDITION_FAILED - inequivalent arg 'x-max-priority' "
                                    f"for queue '{qname}' in vhost '/': {text}")


@pytest.mark.parametrize("value, reason", [
    (256, "{max_value_exceeded,256}"),
    (-1, "{value_negative,-1}"),
    ("10", '"expected integer, got longstr"'),
    (True, '"expected integer, got bool"'),
])
def test_invalid_max_priority(conns, qname, value, reason):
    ch = conns().channel()
    with pytest.raises(ChannelClosedByBroker) as exc:
        ch.queue_declare(qname, arguments={"x-max-priority": value})
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == (f"PRECONDITION_FAILED - invalid arg 'x-max-priority' for "
                                    f"queue '{qname}' in vhost '/': {reason}")


def test_max_priority_255_is_accepted(conns, qname):
    ch = declare(conns, qname, 255)
    publish(ch, qname, [("a254", 254), ("b255", 255), ("c0", 0)])
    assert get_all(ch, qname) == ["b255", "a254", "c0"]


# -- quorum queues: RabbitMQ 4.3's rule (rabbit_fifo + rabbit_fifo_pq) ---------------
# Hutch only: RabbitMQ 3.10's quorum queues ignore priorities (4.0-4.2 had two levels).

@pytest.mark.hutch_only
def test_quorum_queue_has_32_strict_levels_absent_counts_as_4(conns, qname):
    ch = conns().channel()
    ch.queue_declare(qname, durable=True, arguments={"x-queue-type": "quorum"})
    conns.queues.append(qname)
    ch.confirm_delivery()
    publish(ch, qname, [("a3", 3), ("b-", None), ("c4", 4), ("d5", 5), ("e40", 40),
                        ("f31", 31), ("g0", 0), ("h30", 30)])
    assert ready_count(ch, qname) == 8
    assert get_all(ch, qname, ack=False) == ["e40", "f31", "h30", "d5", "b-", "c4", "a3", "g0"]


@pytest.mark.hutch_only
def test_quorum_queue_priority_with_a_consumer_and_requeue(conns, qname):
    ch = conns().channel()
    ch.queue_declare(qname, durable=True, arguments={"x-queue-type": "quorum"})
    conns.queues.append(qname)
    ch.confirm_delivery()
    publish(ch, qname, [("low", 1), ("norm", None), ("high", 9)])
    method, _p, body = ch.basic_get(qname, auto_ack=False)
    assert body == b"high"
    ch.basic_nack(method.delivery_tag, requeue=True)
    assert get_all(ch, qname) == ["high", "norm", "low"]
