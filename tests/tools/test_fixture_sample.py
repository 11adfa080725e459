"""A sample of what any project can write with the ``hutch_broker`` fixture (the
pytest plugin hutch installs): the seeds' work queue, tested against a real broker."""

from __future__ import annotations

import aio_pika
import pika


def test_pika_work_queue(hutch_broker):
    conn = pika.BlockingConnection(pika.URLParameters(hutch_broker.url))
    ch = conn.channel()
    ch.queue_declare("task_queue", durable=True)
    for task in ("First message.", "Second message.."):
        ch.basic_publish("", "task_queue", task.encode(), pika.BasicProperties(delivery_mode=2))
    ch.basic_qos(prefetch_count=1)
    method, _, body = ch.basic_get("task_queue")
    assert body == b"First message."
    # The seeds' rabbitmqctl call, as data: one ready, one unacknowledged.
    assert hutch_broker.list_queues() == [
        {"name": "task_queue", "messages_ready": 1, "messages_unacknowledged": 1}]
    ch.basic_ack(method.delivery_tag)
    conn.close()
    # ...and as text, exactly as rabbitmqctl prints it.
    assert hutch_broker.ctl("-q", "list_queues", "name", "messages") == "name\tmessages\ntask_queue\t1\n"


def test_durable_tasks_survive_a_restart(hutch_broker):
    conn = pika.BlockingConnection(pika.URLParameters(hutch_broker.url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("task_queue", durable=True)
    ch.basic_publish("", "task_queue", b"durable", pika.BasicProperties(delivery_mode=2))
    ch.basic_publish("", "task_queue", b"transient", pika.BasicProperties(delivery_mode=1))
    conn.close()
    hutch_broker.restart_sync()  # same URL afterwards
    conn = pika.BlockingConnection(pika.URLParameters(hutch_broker.url))
    ch = conn.channel()
    _, _, body = ch.basic_get("task_queue", auto_ack=True)
    assert body == b"durable"
    assert ch.basic_get("task_queue")[0] is None
    conn.close()


async def test_aio_pika_from_an_async_test(hutch_broker):
    async with await aio_pika.connect(hutch_broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("hello")
        await ch.default_exchange.publish(aio_pika.Message(b"Hello World!"), routing_key="hello")
        msg = await q.get(timeout=5)
        assert msg.body == b"Hello World!"
        await msg.ack()
