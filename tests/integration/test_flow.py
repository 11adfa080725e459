"""Resource limits: max message size, prefetch windows (the resource alarms:
test_memory_alarm.py, test_resource_alarms.py)."""

from __future__ import annotations

import time

import pika
import pytest

from tests.brokerproc import HutchProcess


@pytest.fixture
def small_hutch():
    proc = HutchProcess("--max-message-size", "1000")
    proc.start()
    yield proc
    proc.stop()


@pytest.mark.hutch_only
def test_message_larger_than_max_size_closes_channel_with_406(small_hutch) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(small_hutch.url))
    ch = conn.channel()
    ch.queue_declare("sized")
    ch.basic_publish("", "sized", b"y" * 1000)  # exactly the limit is fine
    ch.basic_publish("", "sized", b"y" * 1001)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare("sized", passive=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == ("PRECONDITION_FAILED - message size 1001 is larger than "
                                     "configured max size 1000")
    ch2 = conn.channel()
    assert ch2.queue_declare("sized", passive=True).method.message_count == 1
    conn.close()


def test_twenty_mib_body_round_trips(broker_url: str, qname: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    ch.queue_declare(qname, auto_delete=True)
    body = bytes(range(256)) * (20 * 1024 * 1024 // 256)
    ch.basic_publish("", qname, body)
    method, _, got = ch.basic_get(qname, auto_ack=True)
    assert method is not None and got == body
    ch.queue_delete(qname)
    conn.close()


def test_publisher_into_a_congested_queue_is_slowed_not_stopped(
        broker_url: str, http_url: str, qname: str, against_rabbitmq: bool) -> None:
    """A worker holds its one prefetched task while a producer keeps publishing: the
    queue grows past the point where Hutch gives the producer only a fair share of the
    loop (its connection shows RabbitMQ's "flow" state), yet every publish arrives."""
    from tests.mgmt import Api

    cons = pika.BlockingConnection(pika.URLParameters(broker_url))
    cch = cons.channel()
    cch.queue_declare(qname, auto_delete=True)
    cch.basic_qos(prefetch_count=1)
    held: list[int] = []
    cch.basic_consume(qname, lambda c, m, p, b: held.append(m.delivery_tag))

    pub = pika.BlockingConnection(pika.URLParameters(broker_url))
    pch = pub.channel()
    api = Api(http_url)
    published = 0
    seen_flow = False
    while published < 5_000 or (not seen_flow and not against_rabbitmq and published < 200_000):
        pch.basic_publish("", qname, b"task")
        published += 1
        if published >= 5_000 and published % 500 == 0 and not against_rabbitmq:
            pub.process_data_events()  # hand what pika buffered to the broker
            states = {c["state"] for c in api.get("connections").json()}
            seen_flow = "flow" in states
    if not against_rabbitmq:
        assert seen_flow, "the producer of a congested queue was never in the flow state"

    # Slowed, not stopped: everything published is in the queue, nothing lost.
    deadline = time.monotonic() + 30
    while not held and time.monotonic() < deadline:
        cons.process_data_events(time_limit=0.1)
    assert held
    while time.monotonic() < deadline:
        ready = pch.queue_declare(qname, passive=True).method.message_count
        if ready == published - 1:
            break
        time.sleep(0.1)
    assert ready == published - 1
    pub.close()
    cons.close()
