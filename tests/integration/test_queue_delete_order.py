"""queue.delete answers before it cancels.

RabbitMQ (rabbit_channel handles queue.delete, then the queue's consumers are told as
it goes away) sends ``queue.delete-ok`` to the deleting channel before the
``basic.cancel`` of that channel's own consumer on the queue; other channels' consumers
get ``basic.cancel``.  py-amqp raises ``ConsumerCancelled`` out of ``queue_delete()``
when the cancel comes first.
"""

from __future__ import annotations

import uuid

import amqp
import pika
from pamqp import commands as cmd

from tests.integration.rawamqp import raw_session


def test_delete_ok_comes_before_the_cancel_of_the_own_consumer(broker_url):
    q = f"qdel.raw.{uuid.uuid4().hex[:8]}"
    with raw_session(broker_url, channels=2) as conn:
        conn.rpc(1, cmd.Queue.Declare(queue=q), cmd.Queue.DeclareOk)
        conn.rpc(1, cmd.Basic.Consume(queue=q, consumer_tag="own"), cmd.Basic.ConsumeOk)
        conn.rpc(2, cmd.Basic.Consume(queue=q, consumer_tag="other"), cmd.Basic.ConsumeOk)
        conn.send(1, cmd.Queue.Delete(queue=q))
        frames = [conn.read_frame() for _ in range(3)]
    on_1 = [type(v).__name__ + ":" + getattr(v, "consumer_tag", "") for ch, v in frames if ch == 1]
    on_2 = [type(v).__name__ + ":" + getattr(v, "consumer_tag", "") for ch, v in frames if ch == 2]
    assert on_1 == ["DeleteOk:", "Cancel:own"]
    assert on_2 == ["Cancel:other"]


def test_py_amqp_queue_delete_with_own_consumer(broker_url):
    u = pika.URLParameters(broker_url)
    conn = amqp.Connection(f"{u.host}:{u.port}", userid="guest", password="guest",
                           connect_timeout=5)
    conn.connect()
    try:
        ch = conn.channel()
        q = f"qdel.amqp.{uuid.uuid4().hex[:8]}"
        ch.queue_declare(q)
        ch.basic_publish(amqp.Message(b"x"), routing_key=q)
        cancelled: list[str] = []
        ch.basic_consume(q, consumer_tag="mine", callback=lambda m: m.channel.basic_ack(
            m.delivery_tag), on_cancel=cancelled.append)
        conn.drain_events(timeout=5)
        assert ch.queue_delete(q) == 0  # no ConsumerCancelled raised out of it
        conn.drain_events(timeout=5)
        assert cancelled == ["mine"]
        ch.close()
    finally:
        conn.close()
