"""Publisher confirms, queue limits, TTL, dead-lettering and queue lifetimes (pika, aio-pika)."""

from __future__ import annotations

import os
import time
import uuid

import aio_pika
import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, NackError, UnroutableError

from tests.integration.test_wq_dispatch import (
    Recorder,
    open_conns,
    publish_n,
    pump_until,
    ready_count,
    setup_queue,
    wait_ready,
)


@pytest.fixture
def conns(broker_url):
    yield from open_conns(broker_url)


HUTCH = not os.environ.get("HUTCH_TEST_AMQP_URL")



def queue_gone(conns, name: str, timeout: float = 5.0, interval: float = 0.03) -> bool:
    """Poll with passive declares (each 404 closes that channel) until ``name`` is gone.

    A passive declare counts as use of the queue (it renews an x-expires lease), so
    for x-expires the interval must exceed the lease."""
    c = conns()
    deadline = time.monotonic() + timeout
    while True:
        ch = c.channel()
        try:
            ch.queue_declare(name, passive=True)
        except ChannelClosedByBroker as exc:
            assert exc.reply_code == 404, exc
            return True
        ch.close()
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def queue_exists(conns, name: str) -> bool:
    c = conns()
    ch = c.channel()
    try:
        ch.queue_declare(name, passive=True)
    except ChannelClosedByBroker as exc:
        assert exc.reply_code == 404, exc
        return False
    ch.close()
    return True


# -- publisher confirms ------------------------------------------------------------

def test_pika_confirms_all_acked(conns, qname):
    _c, ch = setup_queue(conns, qname)
    ch.confirm_delivery()
    for i in range(50):
        ch.basic_publish("", qname, b"%d" % i)  # raises on nack
    assert ready_count(ch, qname) == 50


def test_pika_mandatory_unroutable_returned_then_acked(conns, qname):
    c = conns()
    ch = c.channel()
    ch.confirm_delivery()
    with pytest.raises(UnroutableError) as ei:
        ch.basic_publish("amq.direct", qname + ".nobody", b"lost",
                         pika.BasicProperties(message_id="r1"), mandatory=True)
    (returned,) = ei.value.messages
    assert returned.method.reply_code == 312
    assert returned.method.reply_text == "NO_ROUTE"
    assert returned.method.exchange == "amq.direct"
    assert returned.method.routing_key == qname + ".nobody"
    assert returned.properties.message_id == "r1"
    assert returned.body == b"lost"
    # Not mandatory: silently dropped, but still confirmed; channel still usable.
    ch.basic_publish("amq.direct", qname + ".nobody", b"dropped")
    assert ch.is_open


def test_pika_mandatory_without_confirms_gets_return(conns, qname):
    c = conns()
    ch = c.channel()
    returned = []
    ch.add_on_return_callback(lambda _ch, method, props, body: returned.append((method, body)))
    ch.basic_publish("", qname + ".missing", b"back", mandatory=True)
    assert pump_until([c], lambda: len(returned) == 1)
    assert returned[0][0].reply_code == 312 and returned[0][1] == b"back"


def test_publish_to_missing_exchange_is_404(conns, qname):
    c = conns()
    ch = c.channel()
    ch.confirm_delivery()
    with pytest.raises(ChannelClosedByBroker) as ei:
        ch.basic_publish(qname + ".noexchange", "x", b"x")
    assert ei.value.reply_code == 404


def test_overflow_reject_publish_nacks(conns, qname):
    _c, ch = setup_queue(conns, qname, arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    ch.confirm_delivery()
    ch.basic_publish("", qname, b"m0")
    ch.basic_publish("", qname, b"m1")
    with pytest.raises(NackError):
        ch.basic_publish("", qname, b"m2")
    assert ready_count(ch, qname) == 2
    assert ch.basic_get(qname, auto_ack=True)[2] == b"m0"
    ch.basic_publish("", qname, b"m3")  # room again
    assert ch.basic_get(qname, auto_ack=True)[2] == b"m1"
    assert ch.basic_get(qname, auto_ack=True)[2] == b"m3"


def test_overflow_reject_publish_max_bytes_nacks(conns, qname):
    _c, ch = setup_queue(conns, qname,
                         arguments={"x-max-length-bytes": 10, "x-overflow": "reject-publish"})
    ch.confirm_delivery()
    ch.basic_publish("", qname, b"12345")
    ch.basic_publish("", qname, b"12345")
    with pytest.raises(NackError):
        ch.basic_publish("", qname, b"1")
    assert ready_count(ch, qname) == 2


async def test_aio_pika_publisher_confirms(broker_url, qname):
    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True, on_return_raises=True)
        q = await ch.declare_queue(qname, auto_delete=False)
        try:
            conf = await ch.default_exchange.publish(aio_pika.Message(b"hello"), routing_key=qname)
            assert type(conf).__name__ == "Ack"  # not a Nack
            with pytest.raises(aio_pika.exceptions.PublishError) as ei:
                await ch.default_exchange.publish(
                    aio_pika.Message(b"nowhere"), routing_key=qname + ".none", mandatory=True)
            assert ei.value.frame.reply_code == 312
            # The channel is still fine after the return + ack.
            await ch.default_exchange.publish(aio_pika.Message(b"again"), routing_key=qname)
            msg = await q.get(timeout=5)
            assert msg.body == b"hello"
            await msg.ack()
            msg = await q.get(timeout=5)
            assert msg.body == b"again"
            await msg.ack()
        finally:
            await q.delete(if_unused=False, if_empty=False)


async def test_aio_pika_reject_publish_nack(broker_url, qname):
    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue(qname, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        try:
            await ch.default_exchange.publish(aio_pika.Message(b"a"), routing_key=qname)
            with pytest.raises(aio_pika.exceptions.DeliveryError):
                await ch.default_exchange.publish(aio_pika.Message(b"b"), routing_key=qname)
        finally:
            await q.delete(if_unused=False, if_empty=False)


# -- limits -------------------------------------------------------------------

def test_max_length_drop_head_keeps_newest(conns, qname):
    _c, ch = setup_queue(conns, qname, arguments={"x-max-length": 3})
    publish_n(ch, qname, 7)
    assert wait_ready(ch, qname, 3) == 3
    assert [ch.basic_get(qname, auto_ack=True)[2] for _ in range(3)] == [b"m4", b"m5", b"m6"]


def test_max_length_counts_only_ready(conns, qname):
    """Unacked messages do not count towards x-max-length (RabbitMQ counts ready ones)."""
    _c, ch = setup_queue(conns, qname, arguments={"x-max-length": 2})
    publish_n(ch, qname, 2)
    assert wait_ready(ch, qname, 2) == 2
    m0 = ch.basic_get(qname)[0]
    publish_n(ch, qname, 2, prefix="n")
    assert wait_ready(ch, qname, 2) == 2
    ch.basic_ack(m0.delivery_tag)
    assert [ch.basic_get(qname, auto_ack=True)[2] for _ in range(2)] == [b"n0", b"n1"]


def test_max_length_bytes_drop_head(conns, qname):
    _c, ch = setup_queue(conns, qname, arguments={"x-max-length-bytes": 10})
    for b in (b"aaaa", b"bbbb", b"cccc", b"dddd"):
        ch.basic_publish("", qname, b)
    assert wait_ready(ch, qname, 2) == 2
    assert [ch.basic_get(qname, auto_ack=True)[2] for _ in range(2)] == [b"cccc", b"dddd"]


# -- TTL and dead-lettering ----------------------------------------------------------

def test_queue_message_ttl_expires(conns, qname):
    _c, ch = setup_queue(conns, qname, arguments={"x-message-ttl": 100})
    ch.confirm_delivery()
    publish_n(ch, qname, 3)
    assert wait_ready(ch, qname, 0, timeout=3) == 0
    assert ch.basic_get(qname) == (None, None, None)


def test_per_message_expiration(conns, qname):
    _c, ch = setup_queue(conns, qname)
    ch.confirm_delivery()
    ch.basic_publish("", qname, b"short", pika.BasicProperties(expiration="100"))
    assert wait_ready(ch, qname, 0, timeout=3) == 0
    ch.basic_publish("", qname, b"long", pika.BasicProperties(expiration="60000"))
    ch.basic_publish("", qname, b"zero", pika.BasicProperties(expiration="0"))
    time.sleep(0.05)
    _m, props, body = ch.basic_get(qname, auto_ack=True)
    assert body == b"long" and props.expiration == "60000"
    assert ch.basic_get(qname) == (None, None, None)  # expiration 0 to an idle queue: gone


def test_invalid_expiration_is_406(conns, qname):
    _c, ch = setup_queue(conns, qname)
    ch.basic_publish("", qname, b"x", pika.BasicProperties(expiration="soon"))
    with pytest.raises(ChannelClosedByBroker) as ei:
        ch.queue_declare(qname, passive=True)
    assert ei.value.reply_code == 406


def _dlx_pair(conns, qname, args):
    c = conns()
    ch = c.channel()
    dlx = qname + ".dlx"
    dlq = qname + ".dlq"
    ch.exchange_declare(dlx, "fanout", auto_delete=True)
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    ch.queue_declare(qname, arguments={"x-dead-letter-exchange": dlx, **args})
    conns.queues += [qname, dlq]
    return ch, dlq


def _get_dead(ch, dlq, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = ch.basic_get(dlq, auto_ack=True)
        if got[0] is not None:
            return got
        time.sleep(0.02)
    raise AssertionError("nothing dead-lettered")


def _check_death(props, reason: str, queue: str, rk: str):
    xdeath = props.headers["x-death"]
    assert isinstance(xdeath, list) and len(xdeath) == 1
    d = xdeath[0]
    assert d["reason"] == reason
    assert d["queue"] == queue
    assert d["count"] == 1
    assert d["exchange"] == ""
    assert d["routing-keys"] == [rk]
    assert props.headers["x-first-death-reason"] == reason
    assert props.headers["x-first-death-queue"] == queue
    assert props.headers["x-first-death-exchange"] == ""


def test_dead_letter_expired(conns, qname):
    ch, dlq = _dlx_pair(conns, qname, {"x-message-ttl": 50})
    ch.basic_publish("", qname, b"old", pika.BasicProperties(message_id="e1", headers={"keep": "me"}))
    m, props, body = _get_dead(ch, dlq)
    assert body == b"old"
    assert props.message_id == "e1" and props.headers["keep"] == "me"
    assert m.routing_key == qname  # original routing key kept
    _check_death(props, "expired", qname, qname)
    assert props.expiration is None


def test_dead_letter_per_message_expiration_removes_expiration(conns, qname):
    ch, dlq = _dlx_pair(conns, qname, {})
    ch.basic_publish("", qname, b"old", pika.BasicProperties(expiration="30"))
    _m, props, _body = _get_dead(ch, dlq)
    _check_death(props, "expired", qname, qname)
    assert props.expiration is None
    assert props.headers["x-death"][0]["original-expiration"] == "30"


def test_dead_letter_rejected_with_routing_key(conns, qname):
    ch, dlq = _dlx_pair(conns, qname, {"x-dead-letter-routing-key": "rerouted"})
    ch.basic_publish("", qname, b"bad")
    assert wait_ready(ch, qname, 1) == 1
    m = ch.basic_get(qname)[0]
    ch.basic_reject(m.delivery_tag, requeue=False)
    m2, props, body = _get_dead(ch, dlq)
    assert body == b"bad"
    assert m2.routing_key == "rerouted"
    _check_death(props, "rejected", qname, qname)


def test_dead_letter_nack_multiple(conns, qname):
    ch, dlq = _dlx_pair(conns, qname, {})
    publish_n(ch, qname, 3)
    assert wait_ready(ch, qname, 3) == 3
    for _ in range(3):
        ch.basic_get(qname)
    ch.basic_nack(0, multiple=True, requeue=False)
    bodies = [_get_dead(ch, dlq)[2] for _ in range(3)]
    assert bodies == [b"m0", b"m1", b"m2"]


def test_dead_letter_maxlen(conns, qname):
    ch, dlq = _dlx_pair(conns, qname, {"x-max-length": 1})
    publish_n(ch, qname, 3)
    got = [_get_dead(ch, dlq) for _ in range(2)]
    assert [b for _m, _p, b in got] == [b"m0", b"m1"]
    for _m, props, _b in got:
        _check_death(props, "maxlen", qname, qname)
    assert ch.basic_get(qname, auto_ack=True)[2] == b"m2"


def test_dead_letter_twice_increments_count(conns, qname):
    """Reject from the dead-letter queue back into the original: x-death count grows."""
    c = conns()
    ch = c.channel()
    a, b = qname + ".a", qname + ".b"
    ch.queue_declare(a, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": b})
    ch.queue_declare(b, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": a})
    conns.queues += [a, b]
    ch.basic_publish("", a, b"ping")
    for target, source in ((a, a), (b, b), (a, a)):
        assert wait_ready(ch, target, 1) == 1
        m = ch.basic_get(source)[0]
        ch.basic_reject(m.delivery_tag, requeue=False)
    _m, props, body = _get_dead(ch, b)
    assert body == b"ping"
    deaths = {d["queue"]: d for d in props.headers["x-death"]}
    assert deaths[a]["count"] == 2 and deaths[a]["reason"] == "rejected"
    assert deaths[b]["count"] == 1
    # Most recent death first.
    assert props.headers["x-death"][0]["queue"] == a
    assert props.headers["x-first-death-queue"] == a


# -- queue lifetimes ------------------------------------------------------------------

def test_x_expires_deletes_unused_queue(conns, qname):
    c = conns()
    ch = c.channel()
    ch.queue_declare(qname, arguments={"x-expires": 300})
    conns.queues.append(qname)
    ch.basic_publish("", qname, b"even with messages")
    assert queue_exists(conns, qname)
    assert queue_gone(conns, qname, timeout=5, interval=0.4)


def test_x_expires_redeclare_renews_lease(conns, qname):
    c = conns()
    ch = c.channel()
    ch.queue_declare(qname, arguments={"x-expires": 500})
    conns.queues.append(qname)
    # A message that would vanish with the queue: a redeclare that did not renew the
    # lease would recreate an expired queue empty, and the count below would be 0.
    ch.basic_publish("", qname, b"kept while the lease is renewed")
    for _ in range(8):  # 1.2 s of redeclares, each well inside the 500 ms lease
        time.sleep(0.15)
        ok = ch.queue_declare(qname, arguments={"x-expires": 500})
        assert ok.method.message_count == 1
    assert queue_gone(conns, qname, timeout=5, interval=0.6)


def test_x_expires_not_while_consumed(conns, qname):
    c = conns()
    ch = c.channel()
    ch.queue_declare(qname, arguments={"x-expires": 200})
    conns.queues.append(qname)
    tag = ch.basic_consume(qname, Recorder(ack=True))
    c.process_data_events(time_limit=0.5)
    assert queue_exists(conns, qname)
    ch.basic_cancel(tag)
    assert queue_gone(conns, qname, timeout=5, interval=0.3)


def test_auto_delete_when_last_consumer_cancels(conns, qname):
    c = conns()
    ch = c.channel()
    ch.queue_declare(qname, auto_delete=True)
    conns.queues.append(qname)
    t1 = ch.basic_consume(qname, Recorder(ack=True))
    t2 = ch.basic_consume(qname, Recorder(ack=True))
    ch.basic_cancel(t1)
    assert queue_exists(conns, qname)
    ch.basic_cancel(t2)
    assert queue_gone(conns, qname)


def test_auto_delete_never_consumed_survives(conns, qname):
    c = conns()
    ch = c.channel()
    ch.queue_declare(qname, auto_delete=True)
    conns.queues.append(qname)
    c.close()
    assert queue_exists(conns, qname)


def test_auto_delete_when_consumer_connection_closes(conns, qname):
    c = conns()
    ch = c.channel()
    ch.queue_declare(qname, auto_delete=True)
    conns.queues.append(qname)
    ch.basic_consume(qname, Recorder(ack=True))
    c.close()
    assert queue_gone(conns, qname)


def test_exclusive_queue_locked_then_deleted_with_connection(conns):
    qname = "wq.excl." + uuid.uuid4().hex[:8]  # short: see test_long_reply_text_truncated
    owner = conns()
    och = owner.channel()
    och.queue_declare(qname, exclusive=True)
    och.basic_publish("", qname, b"x")
    other = conns()
    with pytest.raises(ChannelClosedByBroker) as ei:
        other.channel().queue_declare(qname, passive=True)
    assert ei.value.reply_code == 405
    with pytest.raises(ChannelClosedByBroker) as ei:
        other.channel().basic_consume(qname, Recorder())
    assert ei.value.reply_code == 405
    assert ready_count(och, qname) == 1  # the owner can use it
    owner.close()
    assert queue_gone(conns, qname)


def test_server_named_queue(conns):
    c = conns()
    ch = c.channel()
    name = ch.queue_declare("", exclusive=True).method.queue
    assert name.startswith("amq.gen-")
    assert len(name) > len("amq.gen-") + 8
    name2 = ch.queue_declare("", exclusive=True).method.queue
    assert name2 != name
    ch.basic_publish("", name, b"to me")
    assert wait_ready(ch, name, 1) == 1
    assert ch.basic_get(name, auto_ack=True)[2] == b"to me"


def test_reserved_amq_prefix_refused(conns, qname):
    c = conns()
    ch = c.channel()
    with pytest.raises(ChannelClosedByBroker) as ei:
        ch.queue_declare("amq." + qname)
    assert ei.value.reply_code == 403


def test_quorum_queue_work_queue(conns, qname):
    c = conns()
    ch = c.channel()
    ok = ch.queue_declare(qname, durable=True, arguments={"x-queue-type": "quorum"})
    conns.queues.append(qname)
    assert ok.method.queue == qname
    # Redeclare with the same arguments is fine.
    ch.queue_declare(qname, durable=True, arguments={"x-queue-type": "quorum"})
    ch.confirm_delivery()
    for i in range(6):
        ch.basic_publish("", qname, b"q%d" % i, pika.BasicProperties(delivery_mode=2))
    assert wait_ready(ch, qname, 6) == 6
    w1, w2 = conns(), conns()
    r1, r2 = Recorder(ack=True), Recorder(ack=True)
    for w, r in ((w1, r1), (w2, r2)):
        wch = w.channel()
        wch.basic_qos(prefetch_count=1)
        wch.basic_consume(qname, r)
    assert pump_until([w1, w2], lambda: len(r1.got) + len(r2.got) == 6)
    assert sorted(r1.bodies + r2.bodies) == [b"q%d" % i for i in range(6)]
    assert r1.got and r2.got
    assert wait_ready(ch, qname, 0) == 0


def test_quorum_queue_requires_durable(conns, qname):
    c = conns()
    ch = c.channel()
    with pytest.raises(ChannelClosedByBroker) as ei:
        ch.queue_declare(qname, durable=False, arguments={"x-queue-type": "quorum"})
    assert ei.value.reply_code == 406


def test_long_reply_text_truncated(conns):
    """RabbitMQ truncates reply-text to 255 bytes ending in '...'; the channel error stays
    a channel error (404) and the connection survives."""
    c = conns()
    name = "q" * 250
    with pytest.raises(ChannelClosedByBroker) as ei:
        c.channel().queue_declare(name, passive=True)
    assert ei.value.reply_code == 404
    assert ei.value.reply_text.startswith("NOT_FOUND - no queue 'qqq")
    assert len(ei.value.reply_text.encode()) <= 255
    assert c.is_open
    assert c.channel().is_open


def test_overflow_reject_publish_dlx_nacks_and_dead_letters(conns, qname):
    ch, dlq = _dlx_pair(conns, qname, {"x-max-length": 1, "x-overflow": "reject-publish-dlx"})
    ch.confirm_delivery()
    ch.basic_publish("", qname, b"fits")
    with pytest.raises(NackError):
        ch.basic_publish("", qname, b"over")
    _m, props, body = _get_dead(ch, dlq)
    assert body == b"over"
    _check_death(props, "maxlen", qname, qname)
    assert ch.basic_get(qname, auto_ack=True)[2] == b"fits"


@pytest.mark.parametrize("durable", [False, True], ids=["transient", "durable-persistent"])
def test_reject_publish_one_full_queue_of_two(conns, qname, durable):
    """Fanout to a full reject-publish queue and a free one: nacked, yet the free one gets
    it (durable: the nack waits for the free queue's copy to be on disk)."""
    c = conns()
    ch = c.channel()
    x = qname + ".fan"
    ch.exchange_declare(x, "fanout", auto_delete=True)
    full, free = qname + ".full", qname + ".free"
    ch.queue_declare(full, durable=durable, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    ch.queue_declare(free, durable=durable)
    conns.queues += [full, free]
    ch.queue_bind(full, x)
    ch.queue_bind(free, x)
    ch.confirm_delivery()
    with pytest.raises(NackError):
        ch.basic_publish(x, "", b"both", pika.BasicProperties(delivery_mode=2 if durable else 1))
    assert ready_count(ch, free) == 1 and ready_count(ch, full) == 0
