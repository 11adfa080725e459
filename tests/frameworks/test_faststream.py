"""FastStream (``faststream[rabbit]``, aio-pika underneath) on the broker under test
(issue #16, item 4): an app started with ``faststream run`` as a real subprocess,
messages flowing through its subscribers and publishers (default exchange, a topic
exchange, a quorum queue); ``broker.request()`` RPC over direct reply-to; and
FastStream's test client, ``TestRabbitBroker(broker, with_real=True)``, on the real
broker.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
import pytest
from faststream.rabbit import RabbitBroker, RabbitQueue, TestRabbitBroker

from tests.frameworks._dq_procs import WorkerProcess, channel, delete_queues, python_m

pytestmark = pytest.mark.timeout(60)

APP = "tests.frameworks._dq_faststream_app:app"
QUEUES = ("out", "in", "orders", "quorum", "rpc", "fragile", "dead")


@pytest.fixture(scope="module")
def app(broker_url: str) -> Iterator[str]:
    """The prefix of the running app's queues (``faststream run``, one per module)."""
    prefix = f"fs.{uuid.uuid4().hex[:8]}"
    with channel(broker_url) as ch:
        ch.queue_declare(f"{prefix}.out", durable=True)
        ch.queue_declare(f"{prefix}.dead")
    proc = None
    try:
        proc = WorkerProcess(python_m("faststream", "run", APP),
                             {"FS_TEST_AMQP_URL": broker_url, "FS_TEST_PREFIX": prefix},
                             ready="started successfully")
        yield prefix
    finally:
        if proc is not None:
            code = proc.stop()
            print(f"faststream run exited {code}; its last lines:\n{proc.output()[-3000:]}")
        delete_queues(broker_url, [f"{prefix}.{q}" for q in QUEUES])
        with channel(broker_url) as ch:
            ch.exchange_delete(f"{prefix}.events")


def _outputs(url: str, queue: str, count: int, timeout: float = 10.0) -> list[dict[str, str]]:
    got: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout
    with channel(url) as ch:
        while len(got) < count:
            method, _props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                assert time.monotonic() < deadline, f"only {got} on {queue}"
                time.sleep(0.02)
                continue
            got.append(json.loads(body))
    return got


async def test_faststream_run_app_subscribers_and_publishers(app, broker_url):
    prefix = app
    client = RabbitBroker(broker_url)
    async with client:
        await client.publish({"n": 21}, queue=f"{prefix}.in")
        await client.publish("pizza", exchange=f"{prefix}.events", routing_key="orders.new")
        await client.publish("not an order", exchange=f"{prefix}.events", routing_key="invoices.new")
        await client.publish("q", queue=f"{prefix}.quorum")
    got = _outputs(broker_url, f"{prefix}.out", 3)
    assert sorted(got, key=json.dumps) == sorted(
        [{"doubled": 42}, {"order": "pizza"}, {"quorum": "q"}], key=json.dumps)
    # The app declared its quorum queue as one (redeclaring it classic is refused).
    with channel(broker_url) as ch, pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(f"{prefix}.quorum", durable=True, arguments={"x-queue-type": "classic"})
    assert e.value.reply_code == 406
    # The unrouted "invoices.new" produced nothing.
    time.sleep(0.1)
    with channel(broker_url) as ch:
        assert ch.queue_declare(f"{prefix}.out", passive=True).method.message_count == 0


async def test_a_failing_handler_rejects_to_the_dead_letter_queue(app, broker_url):
    prefix = app
    async with RabbitBroker(broker_url) as client:
        await client.publish("poison", queue=f"{prefix}.fragile")
    deadline = time.monotonic() + 10
    with channel(broker_url) as ch:
        while True:
            method, props, body = ch.basic_get(f"{prefix}.dead", auto_ack=True)
            if method is not None:
                break
            assert time.monotonic() < deadline, "nothing dead-lettered"
            time.sleep(0.02)
        assert body == b"poison"
        death = props.headers["x-death"][0]
        assert death["reason"] == "rejected" and death["queue"] == f"{prefix}.fragile"
        assert ch.queue_declare(f"{prefix}.fragile", passive=True).method.message_count == 0


async def test_request_rpc_uses_direct_reply_to(app, broker_url):
    prefix = app
    async with RabbitBroker(broker_url) as client:
        for word in ("ping", "hutch"):
            reply = await client.request(word, queue=f"{prefix}.rpc", timeout=5)
            assert await reply.decode() == word.upper()
            # The reply came back through the pseudo-queue, not a reply queue of our own.
            assert reply.raw_message.routing_key.startswith("amq.rabbitmq.reply-to.")
            assert reply.correlation_id


async def _called(handler: Any, timeout: float = 5.0) -> None:
    """Until the handler's mock has a call. (``wait_call`` cannot wait for a second
    call: its future stays done from the first one until the next call replaces it.)"""
    deadline = time.monotonic() + timeout
    while not handler.mock.call_count:
        assert time.monotonic() < deadline, "the handler was not called"
        await asyncio.sleep(0.01)


async def test_test_client_with_real_broker(broker_url):
    """FastStream's test client with ``with_real=True``: the handler consumes from the
    real broker (a message published by pika reaches it) and requests go over it."""
    prefix = f"fs.{uuid.uuid4().hex[:8]}"
    broker = RabbitBroker(broker_url)

    @broker.subscriber(RabbitQueue(f"{prefix}.tc", auto_delete=True))
    async def handler(body: dict[str, int]) -> dict[str, int]:
        return {"sum": body["a"] + body["b"]}

    async with TestRabbitBroker(broker, with_real=True) as br:
        await br.publish({"a": 1, "b": 2}, queue=f"{prefix}.tc")
        await _called(handler)
        handler.mock.assert_called_once_with({"a": 1, "b": 2})
        handler.mock.reset_mock()
        with channel(broker_url) as ch:
            ch.basic_publish("", f"{prefix}.tc", json.dumps({"a": 5, "b": 6}).encode(),
                             pika.BasicProperties(content_type="application/json"))
        await _called(handler)
        handler.mock.assert_called_once_with({"a": 5, "b": 6})
        reply = await br.request({"a": 20, "b": 22}, queue=f"{prefix}.tc", timeout=5)
        assert await reply.decode() == {"sum": 42}
