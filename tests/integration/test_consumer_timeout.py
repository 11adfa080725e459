"""Delivery acknowledgement timeout (server/ack_timeout.py).

Off by default in Hutch (RabbitMQ's default is 30 minutes): a task may take as long as
it needs.  ``hutch serve --consumer-timeout MS`` sets it broker-wide, ``x-consumer-timeout``
per queue (the queue's value wins, even when larger).  Classic queues close the channel
with 406 and RabbitMQ's text (RabbitMQ 4.2; 4.3 no longer times out classic queues);
quorum queues return the timed-out messages and cancel the consumer (RabbitMQ 4.3).

RabbitMQ 3.10 has neither the per-queue argument nor a quorum-queue timeout, and the
shared dev RabbitMQ's server-wide ``consumer_timeout`` cannot be changed from a test:
those tests run on private Hutch brokers and are marked ``hutch_only``.
"""

from __future__ import annotations

import asyncio
import time

import pika
import pika.exceptions
import pytest

from tests.brokerproc import HutchProcess


def text(channel: int, timeout: int) -> str:
    return (f"PRECONDITION_FAILED - delivery acknowledgement on channel {channel} timed out. "
            f"Timeout value used: {timeout} ms. This timeout value can be configured, see "
            f"consumers doc guide to learn more")


@pytest.fixture
def broker(request):
    """A private Hutch with the ``serve`` flags given by the test's parameter."""
    proc = HutchProcess(*getattr(request, "param", ()), "--in-memory")
    proc.start()
    yield proc
    proc.stop()


def _closed_with(conn, ch, seconds: float) -> tuple[int, str] | None:
    """Run the connection for up to ``seconds``; how ``ch`` was closed, if it was."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and ch.is_open:
        conn.process_data_events(time_limit=0.05)
    if ch.is_open:
        return None
    reason = ch._closing_reason  # pika keeps what the broker said
    return reason.reply_code, reason.reply_text


def _run(conn, seconds: float) -> None:
    """Serve the connection for ``seconds`` (process_data_events returns early once it
    ran a callback)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.process_data_events(time_limit=max(0.0, deadline - time.monotonic()))


def _consume_one(ch, queue: str) -> list:
    got: list = []
    ch.basic_qos(prefetch_count=1)
    ch.basic_consume(queue, lambda c, m, p, b: got.append((m, p, b)))
    return got


# The shared dev RabbitMQ's consumer_timeout is its default (30 min): the same holds there.
def test_off_by_default_a_long_task_is_not_timed_out(broker_url, qname):
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    try:
        ch.queue_declare(qname, auto_delete=True)
        ch.basic_publish("", qname, b"slow task")
        got = _consume_one(ch, qname)
        assert _closed_with(conn, ch, 2.5) is None
        assert len(got) == 1
        ch.basic_ack(got[0][0].delivery_tag)
        ch.queue_declare(qname, passive=True)  # the channel still works
    finally:
        conn.close()


@pytest.mark.hutch_only  # per-queue argument: RabbitMQ 3.10 has none
@pytest.mark.parametrize("get", [False, True])
def test_classic_queue_argument_closes_the_channel(broker, get):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("work", arguments={"x-consumer-timeout": 300})
    ch.basic_publish("", "work", b"task")
    started = time.monotonic()
    if get:
        assert ch.basic_get("work")[0] is not None
    else:
        assert _consume_one(ch, "work") is not None
    closed = _closed_with(conn, ch, 5)
    took = time.monotonic() - started
    assert closed == (406, text(ch.channel_number, 300))
    assert 0.25 <= took < 2.0, took
    # The message went back to the queue, redelivered, and another consumer gets it.
    other = conn.channel()
    got = _consume_one(other, "work")
    conn.process_data_events(time_limit=0.3)
    assert len(got) == 1 and got[0][2] == b"task" and got[0][0].redelivered
    other.basic_ack(got[0][0].delivery_tag)
    assert _closed_with(conn, other, 0.6) is None  # acked in time: nothing happens
    conn.close()


@pytest.mark.hutch_only
@pytest.mark.parametrize("broker", [("--consumer-timeout", "400")], indirect=True)
def test_broker_wide_timeout(broker):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("work", durable=True)
    ch.basic_publish("", "work", b"task")
    _consume_one(ch, "work")
    assert _closed_with(conn, ch, 5) == (406, text(ch.channel_number, 400))
    conn.close()


@pytest.mark.hutch_only
@pytest.mark.parametrize("broker", [("--consumer-timeout", "300")], indirect=True)
def test_queue_value_wins_over_the_broker_wide_one(broker):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("patient", arguments={"x-consumer-timeout": 600_000})
    ch.basic_publish("", "patient", b"task")
    got = _consume_one(ch, "patient")
    assert _closed_with(conn, ch, 1.5) is None  # 300 ms would have closed it
    ch.basic_ack(got[0][0].delivery_tag)
    ch.queue_declare("strict", arguments={"x-consumer-timeout": 200})
    ch.basic_publish("", "strict", b"task")
    _consume_one(ch, "strict")
    assert _closed_with(conn, ch, 5) == (406, text(ch.channel_number, 200))
    conn.close()


@pytest.mark.hutch_only  # RabbitMQ 4.3's quorum-queue consumer timeout; 3.10 has none
def test_quorum_queue_cancels_the_consumer_and_returns_the_message(broker):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("qq", durable=True,
                     arguments={"x-queue-type": "quorum", "x-consumer-timeout": 300})
    ch.basic_publish("", "qq", b"task")
    cancelled: list = []
    ch.add_on_cancel_callback(cancelled.append)
    got = _consume_one(ch, "qq")
    deadline = time.monotonic() + 5
    while not cancelled and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert cancelled, "the consumer was not cancelled"
    assert ch.is_open  # not closed: cancelled
    # A late ack of the returned delivery is ignored, as RabbitMQ ignores it.
    ch.basic_ack(got[0][0].delivery_tag)
    ch.queue_declare("qq", passive=True)
    # The message is back, redelivered; a timeout is not a failed delivery.
    other = conn.channel()
    again = _consume_one(other, "qq")
    conn.process_data_events(time_limit=0.3)
    assert len(again) == 1 and again[0][0].redelivered
    headers = again[0][1].headers or {}
    assert headers.get("x-acquired-count") == 1 and "x-delivery-count" not in headers
    other.basic_ack(again[0][0].delivery_tag)
    conn.close()


@pytest.mark.hutch_only
def test_quorum_queue_without_cancel_notify_closes_the_channel(broker):
    params = pika.URLParameters(broker.url)
    params.client_properties = {"capabilities": {"basic.nack": True}}  # no consumer_cancel_notify
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare("qq", durable=True,
                     arguments={"x-queue-type": "quorum", "x-consumer-timeout": 300})
    ch.basic_publish("", "qq", b"task")
    _consume_one(ch, "qq")
    assert _closed_with(conn, ch, 5) == (406, text(ch.channel_number, 300))
    conn.close()


@pytest.mark.hutch_only  # RabbitMQ 3.10 does not validate x-consumer-timeout (4.3 does)
@pytest.mark.parametrize(("value", "detail"), [
    ("soon", '"expected integer, got longstr"'),
    (-1, "{value_negative,-1}"),
    ("", '"expected integer, got longstr"'),
])
def test_bad_argument_is_refused(broker_url, qname, value, detail):
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare(qname, arguments={"x-consumer-timeout": value})
    assert (info.value.reply_code, info.value.reply_text) == (
        406, f"PRECONDITION_FAILED - invalid arg 'x-consumer-timeout' for queue '{qname}' "
             f"in vhost '/': {detail}")
    conn.close()


@pytest.mark.hutch_only  # compared on redeclare since RabbitMQ 4.3; 3.10 does not
def test_redeclare_with_another_timeout_is_refused(broker_url, qname):
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    ch.queue_declare(qname, auto_delete=True, arguments={"x-consumer-timeout": 1000})
    ch.basic_consume(qname, lambda *a: None)  # keeps the auto-delete queue
    other = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        other.queue_declare(qname, auto_delete=True, arguments={"x-consumer-timeout": 2000})
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-consumer-timeout' for queue '{qname}' in "
        f"vhost '/': received '2000' but current is '1000'")
    conn.close()


@pytest.mark.hutch_only
async def test_aio_pika_channel_closed_and_message_requeued(broker):
    aio_pika = pytest.importorskip("aio_pika")
    conn = await aio_pika.connect(broker.url)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue("jobs", arguments={"x-consumer-timeout": 300})
        await ch.default_exchange.publish(aio_pika.Message(b"job"), routing_key="jobs")
        closed = asyncio.get_running_loop().create_future()

        async def on_close(_ch, exc) -> None:
            if not closed.done():
                closed.set_result(exc)

        async def never_ack(_msg) -> None:
            pass

        ch.close_callbacks.add(on_close)
        await q.consume(never_ack)
        exc = await asyncio.wait_for(closed, 5)
        assert isinstance(exc, aio_pika.exceptions.ChannelPreconditionFailed)
        assert "delivery acknowledgement on channel" in str(exc)
        ch2 = await conn.channel()
        q2 = await ch2.declare_queue("jobs", arguments={"x-consumer-timeout": 300})
        msg = await q2.get(timeout=5)
        assert msg.body == b"job" and msg.redelivered
        await msg.ack()
    finally:
        await conn.close()


@pytest.mark.hutch_only
def test_quorum_queue_returns_each_delivery_at_its_own_deadline(broker):
    """The consumer is cancelled at the first timeout; a younger delivery it still
    holds is returned when its own deadline passes (it may still be acked before)."""
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("qq", durable=True,
                     arguments={"x-queue-type": "quorum", "x-consumer-timeout": 400})
    got: list = []
    ch.basic_qos(prefetch_count=2)
    ch.basic_consume("qq", lambda c, m, p, b: got.append(b))
    pub = pika.BlockingConnection(pika.URLParameters(broker.url)).channel()
    pub.confirm_delivery()  # each publish is on the broker when it returns
    pub.basic_publish("", "qq", b"first")
    _run(conn, 0.25)
    pub.basic_publish("", "qq", b"second")
    _run(conn, 0.3)  # "first" timed out, "second" not yet
    assert got == [b"first", b"second"]
    counts = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        counts.append(ch.queue_declare("qq", passive=True).method.message_count)
        if counts[-1] == 2:
            break
        conn.process_data_events(time_limit=0.05)
    assert 1 in counts and counts[-1] == 2, counts
    assert ch.is_open
    pub.connection.close()
    conn.close()


@pytest.mark.hutch_only
def test_embedded_broker_takes_a_consumer_timeout():
    """``hutch.Broker(consumer_timeout=MS)``, as ``hutch serve --consumer-timeout``."""
    import hutch

    with hutch.Broker(management=False, consumer_timeout=300) as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.queue_declare("work")
        ch.basic_publish("", "work", b"task")
        _consume_one(ch, "work")
        assert _closed_with(conn, ch, 5) == (406, text(ch.channel_number, 300))
        conn.close()


@pytest.mark.hutch_only  # RabbitMQ 4.3's quorum-queue consumer timeout; 3.10 has none
@pytest.mark.parametrize("first_type", ["classic", "quorum"])
def test_quorum_timeout_fires_behind_an_older_untimed_delivery(broker, first_type):
    """Each quorum queue times out its own deliveries (RabbitMQ 4.3, rabbit_fifo
    evaluate_consumer_timeout), whatever older delivery the channel still holds."""
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("untimed", durable=True, arguments={"x-queue-type": first_type})
    ch.queue_declare("qq", durable=True,
                     arguments={"x-queue-type": "quorum", "x-consumer-timeout": 300})
    cancelled: list = []
    got: list = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    ch.basic_publish("", "untimed", b"old")
    ch.basic_consume("untimed", lambda c, m, p, b: got.append(b), consumer_tag="untimed")
    _run(conn, 0.2)
    ch.basic_publish("", "qq", b"young")
    ch.basic_consume("qq", lambda c, m, p, b: got.append(b), consumer_tag="timed")
    deadline = time.monotonic() + 5
    while not cancelled and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert got == [b"old", b"young"]
    assert cancelled == ["timed"]
    assert ch.is_open
    assert ch.queue_declare("qq", durable=True, passive=True).method.message_count == 1
    conn.close()


@pytest.mark.hutch_only  # RabbitMQ 4.3: basic.get takes a 'once' consumer with the timeout
def test_quorum_basic_get_timeout_closes_the_channel(broker):
    """A timed-out basic.get delivery has no consumer to cancel: RabbitMQ 4.3's channel
    takes its fallback and closes (it prints -1 ms; Hutch prints the queue's value)."""
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("qq", durable=True,
                     arguments={"x-queue-type": "quorum", "x-consumer-timeout": 300})
    ch.basic_publish("", "qq", b"task")
    assert ch.basic_get("qq")[0] is not None
    assert _closed_with(conn, ch, 5) == (406, text(ch.channel_number, 300))
    other = conn.channel()
    assert other.queue_declare("qq", durable=True, passive=True).method.message_count == 1
    conn.close()


@pytest.mark.hutch_only  # RabbitMQ 4.3's quorum-queue consumer timeout; 3.10 has none
def test_quorum_timeout_after_the_client_cancelled_closes_the_channel(broker):
    """The client cancelled its consumer but still holds a delivery: on its timeout
    the tag is no longer the channel's, and RabbitMQ 4.3 closes the channel."""
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("qq", durable=True,
                     arguments={"x-queue-type": "quorum", "x-consumer-timeout": 300})
    ch.basic_publish("", "qq", b"task")
    got = _consume_one(ch, "qq")
    deadline = time.monotonic() + 2
    while not got and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert len(got) == 1
    ch.basic_cancel(got[0][0].consumer_tag)
    assert _closed_with(conn, ch, 5) == (406, text(ch.channel_number, 300))
    other = conn.channel()
    assert other.queue_declare("qq", durable=True, passive=True).method.message_count == 1
    conn.close()
