"""Single active consumer (queue argument ``x-single-active-consumer``) over real sockets.

RabbitMQ's consumers.md "Single Active Consumer" and rabbit_amqqueue_process.erl
(classic) / rabbit_fifo.erl (quorum): one consumer gets messages at a time, the first
registered; when it is cancelled, its channel closes or its connection dies, the next
waiting consumer (highest x-priority, earliest registered among equals) takes over.
Messages the old one holds unacked stay with its channel after basic.cancel, and are
requeued at their original positions (so delivered to the new one first) when its
channel or connection goes.  RabbitMQ 3.10 has all of that for classic queues; quorum
queues' hand-over to a higher-priority consumer is RabbitMQ 4.0+ (hutch_only).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from urllib.parse import urlparse

import aio_pika
import amqp
import pika
import pytest

from tests.integration.test_wq_dispatch import open_conns, pump_for, pump_until

SAC = {"x-single-active-consumer": True}


@pytest.fixture
def conns(broker_url):
    yield from open_conns(broker_url)


class Got:
    """Deliveries in arrival order: (consumer tag, body, delivery tag, redelivered)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes, int, bool]] = []

    def handler(self, tag: str):
        def on_message(_ch, method, _props, body) -> None:
            self.items.append((tag, body, method.delivery_tag, method.redelivered))
        return on_message

    def of(self, tag: str) -> list[tuple[bytes, bool]]:
        return [(b, r) for t, b, _d, r in self.items if t == tag]

    def tags(self) -> list[str]:
        return [t for t, _b, _d, _r in self.items]


def declare(conns, qname: str, **kw) -> pika.BlockingConnection:
    conns.queues.append(qname)
    c = conns()
    args = {**SAC, **kw.pop("arguments", {})}
    c.channel().queue_declare(qname, arguments=args, **kw)
    return c


def consume(conn, q: str, got: Got, tag: str, prefetch: int = 0, priority: int | None = None):
    ch = conn.channel()
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


def bodies(n: int, start: int = 0) -> list[bytes]:
    return [b"m%d" % i for i in range(start, start + n)]


def unacked(conn, q: str) -> int:
    """messages_unacknowledged is not in queue.declare-ok: ready + unacked = all, so
    count the ready ones and subtract from what was published."""
    return conn.channel().queue_declare(q, passive=True).method.message_count


def test_only_the_first_registered_consumer_receives(conns, qname) -> None:
    c = declare(conns, qname)
    got = Got()
    consume(c, qname, got, "first")
    consume(c, qname, got, "second")
    consume(c, qname, got, "third", priority=10)  # classic: priority does not take over
    publish(c, qname, 20)
    assert pump_until([c], lambda: len(got.items) == 20)
    pump_for([c], 0.2)
    assert got.tags() == ["first"] * 20


def test_waiting_consumers_get_nothing_while_the_active_one_is_full(conns, qname) -> None:
    c = declare(conns, qname)
    got = Got()
    consume(c, qname, got, "first", prefetch=2)
    consume(c, qname, got, "second")
    publish(c, qname, 5)
    pump_for([c], 0.5)
    assert got.tags() == ["first", "first"]
    assert c.channel().queue_declare(qname, passive=True).method.message_count == 3


def test_takeover_on_cancel_keeps_old_unacked_with_its_channel(conns, qname) -> None:
    c = declare(conns, qname)
    got = Got()
    first_ch = consume(c, qname, got, "first", prefetch=3)
    consume(c, qname, got, "second")
    publish(c, qname, 3)
    assert pump_until([c], lambda: len(got.items) == 3)
    first_ch.basic_cancel("first")
    publish(c, qname, 2, start=3)
    # New messages go to the new active consumer; the three "first" holds stay unacked
    # on its channel, not redelivered.
    assert pump_until([c], lambda: len(got.items) == 5)
    pump_for([c], 0.2)
    assert got.of("first") == [(b, False) for b in bodies(3)]
    assert got.of("second") == [(b, False) for b in bodies(2, 3)]
    # The cancelled consumer's channel can still ack what it holds.
    first_ch.basic_ack(0, multiple=True)
    publish(c, qname, 2, start=5)
    assert pump_until([c], lambda: len(got.items) == 7)
    assert got.tags()[5:] == ["second", "second"]
    assert first_ch.is_open
    assert c.channel().queue_declare(qname, passive=True).method.message_count == 0


@pytest.mark.hutch_only  # RabbitMQ 4.0+ (stop_consumer runs the queue); 3.10's classic queues
# leave the ready messages alone until the next publish or ack after the cancel.
def test_new_active_consumer_gets_the_ready_messages_at_once_after_cancel(conns, qname) -> None:
    c = declare(conns, qname)
    got = Got()
    first_ch = consume(c, qname, got, "first", prefetch=1)
    consume(c, qname, got, "second")
    publish(c, qname, 3)
    assert pump_until([c], lambda: len(got.items) == 1)
    first_ch.basic_cancel("first")
    assert pump_until([c], lambda: len(got.items) == 3)
    assert got.of("second") == [(b"m1", False), (b"m2", False)]


def _amqp_consumer(broker_url: str, q: str, tag: str, prefetch: int):
    """A py-amqp (kombu's transport) consumer: its Channel.close() sends channel.close
    without cancelling the consumer first (pika's cancels first, which would make this a
    takeover on cancel)."""
    u = urlparse(broker_url)
    conn = amqp.Connection(host=f"{u.hostname}:{u.port}", userid=u.username or "guest",
                           password=u.password or "guest")
    conn.connect()
    ch = conn.channel()
    ch.basic_qos(0, prefetch, False)
    held: list[bytes] = []
    ch.basic_consume(q, consumer_tag=tag, callback=lambda m: held.append(m.body))
    return conn, ch, held


def test_takeover_on_channel_close_redelivers_old_unacked_first(broker_url, conns,
                                                                 qname) -> None:
    c = declare(conns, qname)
    got = Got()
    aconn, ach, held = _amqp_consumer(broker_url, qname, "first", prefetch=3)
    try:
        consume(c, qname, got, "second")
        publish(c, qname, 5)
        deadline = time.monotonic() + 5
        while len(held) < 3 and time.monotonic() < deadline:
            try:
                aconn.drain_events(timeout=0.1)
            except TimeoutError:
                pass
        pump_for([c], 0.2)
        assert held == bodies(3) and got.items == []
        ach.close()
        assert pump_until([c], lambda: len(got.of("second")) == 5)
        # Requeued at their original positions, ahead of the two never delivered.
        assert got.of("second") == [(b"m0", True), (b"m1", True), (b"m2", True),
                                    (b"m3", False), (b"m4", False)]
    finally:
        aconn.close()


def _close_by_error(ch) -> None:
    """Make the broker close ``ch`` (406 unknown delivery tag): the consumer is not
    cancelled first."""
    ch.basic_ack(999_999)
    assert pump_until([ch.connection], lambda: ch.is_closed)


def test_takeover_when_the_active_consumers_channel_dies(conns, qname) -> None:
    c = declare(conns, qname)
    got = Got()
    first_ch = consume(c, qname, got, "first", prefetch=2)
    consume(c, qname, got, "second")
    publish(c, qname, 4)
    assert pump_until([c], lambda: len(got.items) == 2)
    pump_for([c], 0.2)
    assert got.tags() == ["first", "first"]
    _close_by_error(first_ch)
    assert pump_until([c], lambda: len(got.of("second")) == 4)
    assert got.of("second") == [(b"m0", True), (b"m1", True), (b"m2", False), (b"m3", False)]


def _kill(conn: pika.BlockingConnection) -> None:
    """Close the socket under the client with a reset (no connection.close)."""
    sock = conn._impl._transport._sock
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_takeover_when_the_active_consumers_connection_dies(conns, qname) -> None:
    c = declare(conns, qname)
    got = Got()
    doomed = conns()
    consume(doomed, qname, got, "first", prefetch=2)
    consume(c, qname, got, "second")
    publish(c, qname, 4)
    assert pump_until([doomed], lambda: len(got.items) == 2)
    pump_for([c, doomed], 0.2)
    assert got.tags() == ["first", "first"]
    _kill(doomed)
    assert pump_until([c], lambda: len(got.of("second")) == 4)
    assert got.of("second") == [(b"m0", True), (b"m1", True), (b"m2", False), (b"m3", False)]


def test_next_active_is_the_highest_priority_waiting_consumer(conns, qname) -> None:
    c = declare(conns, qname)
    got = Got()
    first_ch = consume(c, qname, got, "first")
    consume(c, qname, got, "second")
    consume(c, qname, got, "vip", priority=5)
    consume(c, qname, got, "vip2", priority=5)
    first_ch.basic_cancel("first")
    publish(c, qname, 3)
    assert pump_until([c], lambda: len(got.items) == 3)
    pump_for([c], 0.2)
    assert got.tags() == ["vip"] * 3


def test_registration_order_decides_among_equals(conns, qname) -> None:
    c = declare(conns, qname)
    got = Got()
    chans = {t: consume(c, qname, got, t) for t in ("a", "b", "c")}
    for tag, expected in (("a", "b"), ("b", "c")):
        chans[tag].basic_cancel(tag)
        got.items.clear()
        publish(c, qname, 2)
        assert pump_until([c], lambda: len(got.items) == 2)
        assert got.tags() == [expected] * 2


def test_consumer_returning_after_cancel_waits_at_the_back(conns, qname) -> None:
    c = declare(conns, qname)
    got = Got()
    a = consume(c, qname, got, "a")
    consume(c, qname, got, "b")
    a.basic_cancel("a")
    a.basic_consume(qname, got.handler("a"), consumer_tag="a")
    publish(c, qname, 2)
    assert pump_until([c], lambda: len(got.items) == 2)
    assert got.tags() == ["b", "b"]


def test_redeclare_with_another_value_is_406(conns, qname) -> None:
    c = declare(conns, qname)
    ch = c.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare(qname, arguments={"x-single-active-consumer": False})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-single-active-consumer' for queue "
        f"'{qname}' in vhost '/': received 'false' but current is 'true'")
    ch = c.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare(qname)
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-single-active-consumer' for queue "
        f"'{qname}' in vhost '/': received none but current is the value 'true' of type "
        f"'bool'")


def test_non_boolean_value_is_406(conns, qname) -> None:
    c = conns()
    ch = c.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare(qname, arguments={"x-single-active-consumer": "yes"})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue '{qname}' in "
        f"vhost '/': {{unacceptable_type,longstr}}")


@pytest.mark.parametrize("others", [0, 1])
def test_exclusive_consume_on_single_active_queue_is_refused(conns, qname, others) -> None:
    c = declare(conns, qname)
    got = Got()
    for i in range(others):
        consume(c, qname, got, f"plain{i}")
    ch = c.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.basic_consume(qname, lambda *a: None, exclusive=True)
    assert info.value.reply_code == 403
    assert info.value.reply_text == (
        f"ACCESS_REFUSED - queue '{qname}' in vhost '/' in exclusive use")


def test_exclusive_consumer_still_excludes_others_on_a_plain_queue(conns, qname) -> None:
    conns.queues.append(qname)
    c = conns()
    c.channel().queue_declare(qname)
    c.channel().basic_consume(qname, lambda *a: None, exclusive=True)
    ch = c.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.basic_consume(qname, lambda *a: None)
    assert info.value.reply_code == 403
    assert info.value.reply_text == (
        f"ACCESS_REFUSED - queue '{qname}' in vhost '/' in exclusive use")


def test_durable_single_active_queue_hands_over_too(conns, qname) -> None:
    """A durable queue (paged message store on Hutch) behaves the same."""
    c = declare(conns, qname, durable=True)
    got = Got()
    first_ch = consume(c, qname, got, "first", prefetch=1)
    consume(c, qname, got, "second")
    publish(c, qname, 3)
    assert pump_until([c], lambda: len(got.items) == 1)
    _close_by_error(first_ch)
    assert pump_until([c], lambda: len(got.of("second")) == 3)
    assert got.of("second") == [(b"m0", True), (b"m1", False), (b"m2", False)]


async def test_aio_pika_takeover_on_channel_close(broker_url: str, qname: str) -> None:
    conn = await aio_pika.connect(broker_url)
    try:
        setup = await conn.channel()
        q = await setup.declare_queue(qname, arguments=SAC, auto_delete=True)
        got: list[tuple[str, bytes, bool]] = []

        def handler(tag: str, ack: bool):
            async def on_message(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
                got.append((tag, msg.body, msg.redelivered))
                if ack:
                    await msg.ack()
            return on_message

        ch1 = await conn.channel()
        await ch1.set_qos(prefetch_count=1)
        q1 = await ch1.get_queue(qname, ensure=False)
        await q1.consume(handler("first", ack=False), consumer_tag="first")
        await q.consume(handler("second", ack=True), consumer_tag="second")
        for i in range(3):
            await setup.default_exchange.publish(aio_pika.Message(b"m%d" % i), routing_key=qname)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        assert got == [("first", b"m0", False)]
        await ch1.close()
        while len(got) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert got[1:] == [("second", b"m0", True), ("second", b"m1", False),
                           ("second", b"m2", False)]
    finally:
        await conn.close()


# -- quorum queues: RabbitMQ 4.x ------------------------------------------------------


def test_quorum_single_active_basic_takeover(conns, qname) -> None:
    c = declare(conns, qname, durable=True, arguments={"x-queue-type": "quorum"})
    got = Got()
    first_ch = consume(c, qname, got, "first", prefetch=2)
    consume(c, qname, got, "second")
    publish(c, qname, 4)
    assert pump_until([c], lambda: len(got.items) == 2)
    pump_for([c], 0.2)
    assert got.tags() == ["first", "first"]
    _close_by_error(first_ch)
    assert pump_until([c], lambda: len(got.of("second")) == 4)
    assert got.of("second") == [(b"m0", True), (b"m1", True), (b"m2", False), (b"m3", False)]


def test_quorum_takeover_on_cancel(conns, qname) -> None:
    c = declare(conns, qname, durable=True, arguments={"x-queue-type": "quorum"})
    got = Got()
    first_ch = consume(c, qname, got, "first", prefetch=1)
    consume(c, qname, got, "second")
    publish(c, qname, 3)
    assert pump_until([c], lambda: len(got.items) == 1)
    pump_for([c], 0.2)
    # Quorum queues (3.10 and 4.x alike) hand the ready messages over at once.
    assert got.of("first") == [(b"m0", False)]
    first_ch.basic_cancel("first")
    assert pump_until([c], lambda: len(got.of("second")) == 2)
    assert got.of("second") == [(b"m1", False), (b"m2", False)]


@pytest.mark.hutch_only  # RabbitMQ 4.0+: 3.10's quorum queues never hand over to a higher priority
def test_quorum_higher_priority_consumer_takes_over_once_the_active_one_settles(
        conns, qname) -> None:
    c = declare(conns, qname, durable=True, arguments={"x-queue-type": "quorum"})
    got = Got()
    low_ch = consume(c, qname, got, "low", prefetch=2)
    publish(c, qname, 2)
    assert pump_until([c], lambda: len(got.items) == 2)
    high_ch = consume(c, qname, got, "high", priority=10)
    # The low one is quiescing: it holds two unacked and gets nothing more, and the
    # high one gets nothing until those are settled.
    publish(c, qname, 3, start=2)
    pump_for([c], 0.3)
    assert got.tags() == ["low", "low"]
    low_ch.basic_ack(0, multiple=True)
    assert pump_until([c], lambda: len(got.items) == 5)
    assert got.of("high") == [(b, False) for b in bodies(3, 2)]
    # The low one waits again; it becomes active when the high one goes.
    high_ch.basic_cancel("high")
    got.items.clear()
    publish(c, qname, 1, start=5)
    assert pump_until([c], lambda: len(got.items) == 1)
    assert got.tags() == ["low"]


@pytest.mark.hutch_only  # RabbitMQ 4.0+ quorum queues only
def test_quorum_higher_priority_takes_over_at_once_when_nothing_is_unacked(conns, qname) -> None:
    c = declare(conns, qname, durable=True, arguments={"x-queue-type": "quorum"})
    got = Got()
    consume(c, qname, got, "low")
    consume(c, qname, got, "high", priority=1)
    publish(c, qname, 3)
    assert pump_until([c], lambda: len(got.items) == 3)
    assert got.tags() == ["high"] * 3


@pytest.mark.hutch_only  # RabbitMQ 4.0+ quorum queues only
def test_quorum_quiescing_consumer_that_requeues_hands_over_its_messages(conns, qname) -> None:
    c = declare(conns, qname, durable=True, arguments={"x-queue-type": "quorum"})
    got = Got()
    low_ch = consume(c, qname, got, "low", prefetch=1)
    publish(c, qname, 2)
    assert pump_until([c], lambda: len(got.items) == 1)
    consume(c, qname, got, "high", priority=3)
    pump_for([c], 0.2)
    low_ch.basic_nack(got.items[0][2], requeue=True)
    assert pump_until([c], lambda: len(got.of("high")) == 2)
    assert got.of("high") == [(b"m0", True), (b"m1", False)]
