"""basic.get / ack / nack / reject / recover and transactions, over real sockets (pika)."""

from __future__ import annotations

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from tests.integration.test_wq_dispatch import (
    Recorder,
    open_conns,
    publish_n,
    pump_for,
    pump_until,
    ready_count,
    setup_queue,
    stays,
    wait_ready,
)


@pytest.fixture
def conns(broker_url):
    yield from open_conns(broker_url)


def test_basic_get_and_get_empty(conns, qname):
    _c, ch = setup_queue(conns, qname)
    publish_n(ch, qname, 3)
    assert wait_ready(ch, qname, 3) == 3
    method, _props, body = ch.basic_get(qname)
    assert body == b"m0"
    assert method.delivery_tag == 1
    assert method.redelivered is False
    assert method.message_count == 2  # messages left behind this one
    assert method.exchange == "" and method.routing_key == qname
    method2, _p, body2 = ch.basic_get(qname, auto_ack=True)
    assert body2 == b"m1" and method2.message_count == 1 and method2.delivery_tag == 2
    method3, _p, body3 = ch.basic_get(qname)
    assert body3 == b"m2" and method3.message_count == 0
    assert ch.basic_get(qname) == (None, None, None)  # basic.get-empty
    assert ready_count(ch, qname) == 0
    # Unacked gets come back on channel close, in order, redelivered.
    ch.close()
    c2 = conns()
    ch2 = c2.channel()
    assert wait_ready(ch2, qname, 2) == 2
    m, _p, b = ch2.basic_get(qname, auto_ack=True)
    assert (b, m.redelivered) == (b"m0", True)
    m, _p, b = ch2.basic_get(qname, auto_ack=True)
    assert (b, m.redelivered) == (b"m2", True)


def test_basic_get_missing_queue_is_404(conns, qname):
    c = conns()
    ch = c.channel()
    with pytest.raises(ChannelClosedByBroker) as ei:
        ch.basic_get(qname + ".nope")
    assert ei.value.reply_code == 404


def test_ack_multiple(conns, qname):
    _c, pch = setup_queue(conns, qname)
    publish_n(pch, qname, 5)
    c = conns()
    ch = c.channel()
    r = Recorder()
    ch.basic_consume(qname, r)
    assert pump_until([c], lambda: len(r.got) == 5)
    ch.basic_cancel(ch.consumer_tags[0])
    ch.basic_ack(3, multiple=True)
    ch.close()
    assert wait_ready(pch, qname, 2) == 2
    assert pch.basic_get(qname, auto_ack=True)[2] == b"m3"
    assert pch.basic_get(qname, auto_ack=True)[2] == b"m4"


def test_ack_multiple_zero_acks_all(conns, qname):
    _c, pch = setup_queue(conns, qname)
    publish_n(pch, qname, 4)
    c = conns()
    ch = c.channel()
    r = Recorder()
    ch.basic_consume(qname, r)
    assert pump_until([c], lambda: len(r.got) == 4)
    ch.basic_cancel(ch.consumer_tags[0])
    ch.basic_ack(0, multiple=True)
    ch.close()
    assert stays(pch, qname, 0)


def test_requeue_goes_back_to_the_original_position(conns, qname):
    """Requeued messages return to where they were, ahead of the rest, whatever order
    they are nacked in (RabbitMQ classic queues)."""
    _c, pch = setup_queue(conns, qname)
    bodies = publish_n(pch, qname, 4)
    c = conns()
    ch = c.channel()
    m0, _, b0 = ch.basic_get(qname)
    m1, _, b1 = ch.basic_get(qname)
    assert [b0, b1] == bodies[:2]
    ch.basic_nack(m0.delivery_tag, requeue=True)
    ch.basic_nack(m1.delivery_tag, requeue=True)
    got = []
    for _ in range(4):
        _method, _props, body = ch.basic_get(qname, auto_ack=True)
        got.append(body)
    assert got == bodies


def test_nack_multiple_requeue(conns, qname):
    _c, pch = setup_queue(conns, qname)
    bodies = publish_n(pch, qname, 4)
    c = conns()
    ch = c.channel()
    r = Recorder()
    ch.basic_consume(qname, r)
    assert pump_until([c], lambda: len(r.got) == 4)
    ch.basic_nack(3, multiple=True, requeue=True)
    assert pump_until([c], lambda: len(r.got) == 7)
    pump_for([c], 0.05)
    assert len(r.got) == 7
    # m0..m2 requeued at the head, ahead of nothing (m3 is still unacked): redelivered in order.
    assert r.bodies[4:] == bodies[:3]
    assert [t for t, _r, _b in r.got] == list(range(1, 8))
    assert [red for _t, red, _b in r.got[4:]] == [True, True, True]
    ch.basic_ack(0, multiple=True)


def test_nack_multiple_no_requeue_drops(conns, qname):
    _c, pch = setup_queue(conns, qname)
    publish_n(pch, qname, 3)
    assert wait_ready(pch, qname, 3) == 3
    c = conns()
    ch = c.channel()
    for _ in range(3):
        ch.basic_get(qname)
    ch.basic_nack(0, multiple=True, requeue=False)
    ch.close()
    assert stays(pch, qname, 0)


def test_reject_requeue_and_not(conns, qname):
    _c, pch = setup_queue(conns, qname)
    publish_n(pch, qname, 2)
    c = conns()
    ch = c.channel()
    r = Recorder()
    ch.basic_consume(qname, r)
    assert pump_until([c], lambda: len(r.got) == 2)
    ch.basic_reject(1, requeue=True)
    assert pump_until([c], lambda: len(r.got) == 3)
    assert r.got[2] == (3, True, b"m0")
    ch.basic_reject(3, requeue=False)
    ch.basic_reject(2, requeue=False)
    pump_for([c], 0.1)
    assert len(r.got) == 3
    ch.close()
    assert stays(pch, qname, 0)


def test_unknown_delivery_tag_is_406(conns, qname):
    _c, _pch = setup_queue(conns, qname)
    c = conns()
    ch = c.channel()
    ch.basic_ack(42)
    with pytest.raises(ChannelClosedByBroker) as ei:
        ch.queue_declare(qname, passive=True)  # a round trip to observe the error
    assert ei.value.reply_code == 406


def test_basic_recover_requeue(conns, qname):
    _c, pch = setup_queue(conns, qname)
    bodies = publish_n(pch, qname, 3)
    c = conns()
    ch = c.channel()
    r = Recorder()
    ch.basic_consume(qname, r)
    assert pump_until([c], lambda: len(r.got) == 3)
    ch.basic_recover(requeue=True)
    assert pump_until([c], lambda: len(r.got) == 6)
    assert r.bodies[3:] == bodies
    assert [red for _t, red, _b in r.got] == [False] * 3 + [True] * 3
    assert [t for t, _r, _b in r.got] == list(range(1, 7))
    ch.basic_ack(6, multiple=True)
    ch.close()
    assert stays(pch, qname, 0)


# -- transactions -----------------------------------------------------------------

def test_tx_publish_invisible_until_commit(conns, qname):
    _c, pch = setup_queue(conns, qname)
    c = conns()
    ch = c.channel()
    ch.tx_select()
    publish_n(ch, qname, 3)
    ch.queue_declare(qname, passive=True)  # round trip: publishes were processed
    assert ready_count(pch, qname) == 0
    ch.tx_commit()
    assert ready_count(pch, qname) == 3
    assert [pch.basic_get(qname, auto_ack=True)[2] for _ in range(3)] == [b"m0", b"m1", b"m2"]


def test_tx_rollback_discards_publishes(conns, qname):
    _c, pch = setup_queue(conns, qname)
    c = conns()
    ch = c.channel()
    ch.tx_select()
    publish_n(ch, qname, 2, prefix="gone")
    ch.tx_rollback()
    ch.basic_publish("", qname, b"kept")
    ch.tx_commit()
    assert ready_count(pch, qname) == 1
    assert pch.basic_get(qname, auto_ack=True)[2] == b"kept"


def test_tx_acks_apply_at_commit(conns, qname):
    _c, pch = setup_queue(conns, qname)
    publish_n(pch, qname, 2)
    assert wait_ready(pch, qname, 2) == 2
    c = conns()
    ch = c.channel()
    ch.tx_select()
    m0 = ch.basic_get(qname)[0]
    ch.basic_ack(m0.delivery_tag)
    ch.tx_rollback()  # the ack is undone: m0 is unacked again
    m1 = ch.basic_get(qname)[0]
    ch.basic_ack(m1.delivery_tag)
    ch.tx_commit()  # only m1's ack applies
    ch.close()
    assert wait_ready(pch, qname, 1) == 1
    m, _p, body = pch.basic_get(qname, auto_ack=True)
    assert body == b"m0" and m.redelivered is True


def test_tx_uncommitted_ack_requeued_on_close(conns, qname):
    _c, pch = setup_queue(conns, qname)
    publish_n(pch, qname, 1)
    assert wait_ready(pch, qname, 1) == 1
    c = conns()
    ch = c.channel()
    ch.tx_select()
    m0 = ch.basic_get(qname)[0]
    ch.basic_ack(m0.delivery_tag)
    ch.close()  # never committed
    assert wait_ready(pch, qname, 1) == 1


def test_tx_commit_without_select_is_406(conns):
    c = conns()
    ch = c.channel()
    with pytest.raises(ChannelClosedByBroker) as ei:
        ch.tx_commit()
    assert ei.value.reply_code == 406


def test_confirm_then_tx_is_406(conns):
    c = conns()
    ch = c.channel()
    ch.confirm_delivery()
    with pytest.raises(ChannelClosedByBroker) as ei:
        ch.tx_select()
    assert ei.value.reply_code == 406


def test_tx_properties_survive_commit(conns, qname):
    _c, pch = setup_queue(conns, qname)
    c = conns()
    ch = c.channel()
    ch.tx_select()
    ch.basic_publish("", qname, b"x", pika.BasicProperties(message_id="abc", headers={"k": 1}))
    ch.tx_commit()
    _m, props, body = pch.basic_get(qname, auto_ack=True)
    assert body == b"x" and props.message_id == "abc" and props.headers == {"k": 1}


def test_tx_nack_requeue_applies_at_commit(conns, qname):
    _c, pch = setup_queue(conns, qname)
    publish_n(pch, qname, 1)
    assert wait_ready(pch, qname, 1) == 1
    c = conns()
    ch = c.channel()
    ch.tx_select()
    m0 = ch.basic_get(qname)[0]
    ch.basic_nack(m0.delivery_tag, requeue=True)
    assert stays(pch, qname, 0, duration=0.1)  # not requeued yet
    ch.tx_commit()
    assert wait_ready(pch, qname, 1) == 1
    m, _p, body = pch.basic_get(qname, auto_ack=True)
    assert body == b"m0" and m.redelivered is True


def test_tx_mandatory_return_sent_at_commit(conns, qname):
    c = conns()
    ch = c.channel()
    returned = []
    ch.add_on_return_callback(lambda _ch, method, _p, body: returned.append((method.reply_code, body)))
    ch.tx_select()
    ch.basic_publish("amq.direct", qname + ".none", b"unroutable", mandatory=True)
    ch.tx_commit()
    assert pump_until([c], lambda: returned == [(312, b"unroutable")])
