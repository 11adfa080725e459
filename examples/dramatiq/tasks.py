"""A Dramatiq app on Hutch. The one line that points Dramatiq at Hutch is the broker's
URL (AMQP_URL overrides it); Hutch answers as RabbitMQ, so Dramatiq's own
RabbitmqBroker is all it takes.

    hutch serve                                      # shell 1: the broker
    dramatiq tasks --path examples/dramatiq          # shell 2: the worker
    python examples/dramatiq/send.py                 # shell 3: send some work

test_tasks.py runs the same actors against the hutch_broker pytest fixture.
"""
import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

broker = RabbitmqBroker(
    url=os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/"),
    confirm_delivery=True,  # every send waits for the broker's publisher confirm
    max_priority=10,  # queues get x-max-priority: send_with_options(broker_priority=...)
)
dramatiq.set_broker(broker)

COUNTED: list[int] = []  # what this process's worker counted (read by test_tasks.py)


@dramatiq.actor(max_retries=3, min_backoff=1000)
def count_words(text: str) -> None:
    n = len(text.split())
    COUNTED.append(n)
    print(f"{n} words in {text!r}", flush=True)


@dramatiq.actor(max_retries=2, min_backoff=200, max_backoff=1000)
def always_fails(what: str) -> None:
    """Retried twice (after 0.2-0.4 s, then 0.4-0.8 s), then dead-lettered by the
    broker to the queue 'default.XQ'."""
    raise RuntimeError(f"cannot do {what}")
