"""Consumer priorities (basic.consume argument ``x-priority``) over real sockets.

RabbitMQ's consumer-priority.md: a higher-priority consumer gets every message while
it can take one (prefetch room); lower priorities only get messages while all higher
ones are blocked; equal priorities share round-robin; negative priorities are allowed;
a non-integer ``x-priority`` is a 406.  RabbitMQ 3.10 behaves the same on classic
queues, so these run on both brokers.
"""

from __future__ import annotations

import asyncio
import time

import aio_pika
import kombu
import pika
import pytest

from tests.integration.test_wq_dispatch import open_conns, pump_for, pump_until


@pytest.fixture
def conns(broker_url):
    yield from open_conns(broker_url)


class Got:
    """Deliveries in arrival order, as (consumer tag, body, delivery tag, channel)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes, int, object]] = []

    def handler(self, tag: str):
        def on_message(ch, method, _props, body) -> None:
            self.items.append((tag, body, method.delivery_tag, ch))
        return on_message

    def tags(self) -> list[str]:
        return [t for t, _b, _d, _c in self.items]

    def count(self, tag: str) -> int:
        return self.tags().count(tag)


def consume(conn, q: str, got: Got, tag: str, priority: int | None = None,
            prefetch: int = 0, channel=None):
    ch = channel or conn.channel()
    if prefetch:
        ch.basic_qos(prefetch_count=prefetch)
    args = {"x-priority": priority} if priority is not None else None
    ch.basic_consume(q, got.handler(tag), consumer_tag=tag, arguments=args)
    return ch


def publish(conn, q: str, n: int, start: int = 0) -> None:
    ch = conn.channel()
    for i in range(start, start + n):
        ch.basic_publish("", q, b"m%d" % i)
    ch.close()


def setup(conns, qname: str):
    conns.queues.append(qname)
    c = conns()
    c.channel().queue_declare(qname)
    return c


def test_consumer_priorities_capability_advertised(broker_url: str) -> None:
    c = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        caps = c._impl.server_capabilities
        assert caps.get("consumer_priorities") is True
    finally:
        c.close()


def test_high_priority_consumer_gets_everything_while_it_has_capacity(conns, qname) -> None:
    c = setup(conns, qname)
    got = Got()
    consume(c, qname, got, "low")
    consume(c, qname, got, "high", priority=10)
    consume(c, qname, got, "low2")
    publish(c, qname, 30)
    assert pump_until([c], lambda: len(got.items) == 30)
    assert got.count("high") == 30


def test_lower_priority_gets_the_overflow_when_higher_is_full(conns, qname) -> None:
    c = setup(conns, qname)
    got = Got()
    high_ch = consume(c, qname, got, "high", priority=5, prefetch=2)
    consume(c, qname, got, "low")
    publish(c, qname, 10)
    assert pump_until([c], lambda: len(got.items) == 10)
    assert got.count("high") == 2 and got.count("low") == 8
    # The high one acks: it has room again and gets all of the next messages.
    for tag, _body, dtag, _ch in list(got.items):
        if tag == "high":
            high_ch.basic_ack(dtag)
    got.items.clear()
    publish(c, qname, 2, start=10)
    assert pump_until([c], lambda: len(got.items) == 2)
    assert got.tags() == ["high", "high"]


def test_equal_priorities_share_round_robin(conns, qname) -> None:
    c = setup(conns, qname)
    got = Got()
    ch = c.channel()  # one channel: the delivery order is the dispatch order
    consume(c, qname, got, "a", priority=3, channel=ch)
    consume(c, qname, got, "zero", channel=ch)
    consume(c, qname, got, "b", priority=3, channel=ch)
    publish(c, qname, 10)
    assert pump_until([c], lambda: len(got.items) == 10)
    tags = got.tags()
    assert got.count("zero") == 0
    assert tags in (["a", "b"] * 5, ["b", "a"] * 5), tags


def test_round_robin_again_once_priorities_are_equal(conns, qname) -> None:
    """The only consumer with a priority cancels: the others share as before."""
    c = setup(conns, qname)
    got = Got()
    ch = c.channel()
    consume(c, qname, got, "a", channel=ch)
    consume(c, qname, got, "vip", priority=9, channel=ch)
    consume(c, qname, got, "b", channel=ch)
    publish(c, qname, 4)
    assert pump_until([c], lambda: len(got.items) == 4)
    assert got.tags() == ["vip"] * 4
    ch.basic_cancel("vip")
    got.items.clear()
    publish(c, qname, 6, start=4)
    assert pump_until([c], lambda: len(got.items) == 6)
    assert got.count("a") == 3 and got.count("b") == 3, got.tags()


def test_negative_priority_only_gets_what_the_default_cannot_take(conns, qname) -> None:
    c = setup(conns, qname)
    got = Got()
    consume(c, qname, got, "minus", priority=-5)
    consume(c, qname, got, "default", prefetch=3)
    publish(c, qname, 3)
    assert pump_until([c], lambda: len(got.items) == 3)
    assert got.tags() == ["default"] * 3
    publish(c, qname, 4, start=3)
    assert pump_until([c], lambda: len(got.items) == 7)
    assert got.count("minus") == 4


def test_priorities_across_three_levels(conns, qname) -> None:
    """Each level takes what it has room for before the next one down gets any."""
    c = setup(conns, qname)
    got = Got()
    ch = c.channel()  # one channel (per-consumer prefetch each): delivery order is dispatch order
    consume(c, qname, got, "p1", priority=1, channel=ch)
    consume(c, qname, got, "p10", priority=10, prefetch=1, channel=ch)
    consume(c, qname, got, "p5", priority=5, prefetch=2, channel=ch)
    publish(c, qname, 6)
    assert pump_until([c], lambda: len(got.items) == 6)
    assert got.tags() == ["p10", "p5", "p5", "p1", "p1", "p1"]


@pytest.mark.parametrize("value,type_name", [("high", "longstr"), (True, "bool")])
def test_non_integer_priority_is_refused(conns, qname, value, type_name) -> None:
    c = setup(conns, qname)
    ch = c.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.basic_consume(qname, lambda *a: None, arguments={"x-priority": value})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{qname}' in vhost '/': "
        f'"expected integer, got {type_name}"')
    # The connection lives on and the queue has no consumer.
    assert c.channel().queue_declare(qname, passive=True).method.consumer_count == 0


def test_large_integer_priority_is_accepted(conns, qname) -> None:
    """A 64-bit integer (pika sends it as 'l') is a valid priority."""
    c = setup(conns, qname)
    got = Got()
    consume(c, qname, got, "huge", priority=2**40)
    consume(c, qname, got, "small", priority=2**31 - 1)
    publish(c, qname, 3)
    assert pump_until([c], lambda: len(got.items) == 3)
    assert got.tags() == ["huge"] * 3


async def test_aio_pika_priority_consumer(broker_url: str, qname: str) -> None:
    conn = await aio_pika.connect(broker_url)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(qname, auto_delete=True)
        got: list[str] = []

        def handler(tag: str):
            async def on_message(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
                got.append(tag)
                await msg.ack()
            return on_message

        await q.consume(handler("low"), consumer_tag="low")
        await q.consume(handler("high"), consumer_tag="high", arguments={"x-priority": 7})
        for i in range(10):
            await ch.default_exchange.publish(aio_pika.Message(b"m%d" % i), routing_key=qname)
        deadline = time.monotonic() + 5
        while len(got) < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert got == ["high"] * 10
    finally:
        await conn.close()


def test_kombu_priority_consumer(broker_url: str, qname: str, conns) -> None:
    conns.queues.append(qname)
    got: list[str] = []
    with kombu.Connection(broker_url) as conn:
        queue = kombu.Queue(qname, routing_key=qname, auto_delete=False)
        with conn.channel() as ch_low, conn.channel() as ch_high:
            queue(ch_low).declare()
            low = kombu.Consumer(ch_low, [queue], callbacks=[lambda b, m: (got.append("low"),
                                                                         m.ack())])
            vip = kombu.Queue(qname, routing_key=qname, consumer_arguments={"x-priority": 10})
            high = kombu.Consumer(ch_high, [vip], callbacks=[lambda b, m: (got.append("high"),
                                                                         m.ack())])
            with low, high:
                producer = kombu.Producer(conn.channel())
                for i in range(6):
                    producer.publish(f"m{i}", routing_key=qname)
                deadline = time.monotonic() + 5
                while len(got) < 6 and time.monotonic() < deadline:
                    try:
                        conn.drain_events(timeout=0.1)
                    except TimeoutError:
                        pass
    assert got == ["high"] * 6


def test_blocked_high_priority_consumer_does_not_stall_the_queue(conns, qname) -> None:
    """RabbitMQ does not wait for a blocked high-priority consumer: the lower one takes
    everything while the high one holds its prefetch unacked, and the high one is served
    first again as soon as it acks."""
    c = setup(conns, qname)
    got = Got()
    high_ch = consume(c, qname, got, "high", priority=100, prefetch=2)
    consume(c, qname, got, "low", priority=-100)
    publish(c, qname, 50)
    assert pump_until([c], lambda: len(got.items) == 50)
    pump_for([c], 0.2)
    assert got.count("high") == 2 and got.count("low") == 48
    high_ch.basic_ack(max(d for t, _b, d, _c in got.items if t == "high"), multiple=True)
    got.items.clear()
    publish(c, qname, 2, start=50)
    assert pump_until([c], lambda: len(got.items) == 2)
    assert got.tags() == ["high", "high"]


def test_quorum_queue_consumer_priorities(conns, qname) -> None:
    """Quorum queues serve by priority too (rabbit_fifo's service queue)."""
    conns.queues.append(qname)
    c = conns()
    c.channel().queue_declare(qname, durable=True, arguments={"x-queue-type": "quorum"})
    got = Got()
    consume(c, qname, got, "low")
    consume(c, qname, got, "high", priority=2, prefetch=3)
    publish(c, qname, 5)
    assert pump_until([c], lambda: len(got.items) == 5)
    pump_for([c], 0.2)
    assert got.count("high") == 3 and got.count("low") == 2
