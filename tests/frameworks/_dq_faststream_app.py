"""The FastStream app of tests/frameworks/test_faststream.py, run by a real

    faststream run tests.frameworks._dq_faststream_app:app

Configured by the environment: FS_TEST_AMQP_URL (the broker), FS_TEST_PREFIX (names
unique to the run: the brokers are shared). Every handler's answer is published to
``PREFIX.out``, which the test reads with a plain AMQP client.
"""

from __future__ import annotations

import os

from faststream import FastStream
from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

P = os.environ["FS_TEST_PREFIX"]

broker = RabbitBroker(os.environ["FS_TEST_AMQP_URL"])
app = FastStream(broker)
out = broker.publisher(f"{P}.out")

EVENTS = RabbitExchange(f"{P}.events", type=ExchangeType.TOPIC)


@broker.subscriber(RabbitQueue(f"{P}.in", durable=True))
@out
async def double(body: dict[str, int]) -> dict[str, int]:
    return {"doubled": body["n"] * 2}


@broker.subscriber(RabbitQueue(f"{P}.orders", routing_key="orders.*"), EVENTS)
@out
async def order(body: str) -> dict[str, str]:
    return {"order": body}


@broker.subscriber(RabbitQueue(f"{P}.quorum", durable=True, queue_type=QueueType.QUORUM))
@out
async def quorum(body: str) -> dict[str, str]:
    return {"quorum": body}


@broker.subscriber(RabbitQueue(f"{P}.fragile", arguments={
    "x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{P}.dead"}))
async def fragile(body: str) -> None:
    """Fails: FastStream's default ack policy (reject on error) rejects the message
    without requeue, so the broker dead-letters it to PREFIX.dead."""
    raise ValueError(f"cannot handle {body!r}")


@broker.subscriber(f"{P}.rpc")
async def upper(body: str) -> str:
    """Answers the request's ``reply_to`` (direct reply-to for ``broker.request``)."""
    return body.upper()
